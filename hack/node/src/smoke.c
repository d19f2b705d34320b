/*
 * The node smoke test's only program, linked statically so that an image needs nothing else.
 *
 *   smoke serve PORT           answer every HTTP request with "smoke <hostname>\n"
 *   smoke resolve NAME [NS]    print NAME's IPv4 address, asking the nameserver in
 *                              /etc/resolv.conf and trying its search domains like libc does
 *                              (or asking NS for NAME exactly)
 *   smoke get NAME PORT        resolve NAME the same way, GET / and print the body
 *   smoke write FILE PORT      write "smoke <hostname> uid=<uid>" to FILE, read it back, then
 *                              serve PORT (so a readiness probe says the volume was writable)
 *
 * The resolver is written out here because static glibc cannot load its NSS modules, and the
 * test is meant to prove the cluster's DNS (the pod's resolv.conf) rather than a libc's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_SEARCH 6

struct resolv {
    char nameserver[64];
    char search[MAX_SEARCH][256];
    int nsearch;
    int ndots;
};

static void on_term(int sig) { (void)sig; _exit(0); }

static int read_resolv(struct resolv *r) {
    FILE *f = fopen("/etc/resolv.conf", "r");
    char line[1024];
    memset(r, 0, sizeof(*r));
    r->ndots = 1;
    if (!f) return -1;
    while (fgets(line, sizeof(line), f)) {
        char *tok = strtok(line, " \t\r\n");
        if (!tok) continue;
        if (!strcmp(tok, "nameserver") && !r->nameserver[0]) {
            char *v = strtok(NULL, " \t\r\n");
            if (v) snprintf(r->nameserver, sizeof(r->nameserver), "%s", v);
        } else if (!strcmp(tok, "search")) {
            char *v;
            r->nsearch = 0;
            while ((v = strtok(NULL, " \t\r\n")) && r->nsearch < MAX_SEARCH)
                snprintf(r->search[r->nsearch++], 256, "%s", v);
        } else if (!strcmp(tok, "options")) {
            char *v;
            while ((v = strtok(NULL, " \t\r\n")))
                if (!strncmp(v, "ndots:", 6)) r->ndots = atoi(v + 6);
        }
    }
    fclose(f);
    return r->nameserver[0] ? 0 : -1;
}

/* Encodes NAME as DNS labels at OUT; returns the length or -1. */
static int encode_name(const char *name, unsigned char *out, size_t cap) {
    size_t n = 0;
    const char *p = name;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (len == 0 || len > 63 || n + len + 2 > cap) return -1;
        out[n++] = (unsigned char)len;
        memcpy(out + n, p, len);
        n += len;
        p += len;
        if (*p == '.') p++;
    }
    out[n++] = 0;
    return (int)n;
}

static int skip_name(const unsigned char *m, int len, int off) {
    while (off < len) {
        unsigned char c = m[off];
        if (c == 0) return off + 1;
        if ((c & 0xC0) == 0xC0) return off + 2;
        off += c + 1;
    }
    return -1;
}

/* One A query for FQDN; 0 and the address on success, 1 for NXDOMAIN/no A, -1 for no answer. */
static int query_a(const char *server, const char *fqdn, struct in_addr *addr) {
    unsigned char q[512], a[1500];
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53)};
    struct timeval tv = {.tv_sec = 2};
    int id = getpid() & 0xffff, n, s, try, i;
    if (inet_pton(AF_INET, server, &sa.sin_addr) != 1) return -1;
    memset(q, 0, 12);
    q[0] = id >> 8; q[1] = id & 0xff; q[2] = 0x01; q[5] = 1;
    n = encode_name(fqdn, q + 12, sizeof(q) - 16);
    if (n < 0) return -1;
    n += 12;
    q[n++] = 0; q[n++] = 1; q[n++] = 0; q[n++] = 1;
    s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) return -1;
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (try = 0; try < 3; try++) {
        int len, off, an;
        if (sendto(s, q, n, 0, (struct sockaddr *)&sa, sizeof(sa)) != n) continue;
        len = recv(s, a, sizeof(a), 0);
        if (len < 12 || ((a[0] << 8) | a[1]) != id) continue;
        close(s);
        if ((a[3] & 0x0f) != 0) return 1;
        an = (a[6] << 8) | a[7];
        off = skip_name(a, len, 12);
        if (off < 0) return -1;
        off += 4;
        for (i = 0; i < an && off >= 0 && off + 10 <= len; i++) {
            int type, rdlen;
            off = skip_name(a, len, off);
            if (off < 0 || off + 10 > len) return -1;
            type = (a[off] << 8) | a[off + 1];
            rdlen = (a[off + 8] << 8) | a[off + 9];
            off += 10;
            if (type == 1 && rdlen == 4 && off + 4 <= len) {
                memcpy(addr, a + off, 4);
                return 0;
            }
            off += rdlen;
        }
        return 1;
    }
    close(s);
    return -1;
}

static int resolve(const char *name, struct in_addr *addr) {
    struct resolv r;
    char fqdn[512];
    int dots = 0, i, rc;
    const char *p;
    if (inet_pton(AF_INET, name, addr) == 1) return 0;
    if (read_resolv(&r) != 0) {
        fprintf(stderr, "smoke: no nameserver in /etc/resolv.conf\n");
        return -1;
    }
    for (p = name; *p; p++) dots += *p == '.';
    if (name[strlen(name) - 1] == '.' || dots >= r.ndots) {
        snprintf(fqdn, sizeof(fqdn), "%s", name);
        if (fqdn[strlen(fqdn) - 1] == '.') fqdn[strlen(fqdn) - 1] = 0;
        if (query_a(r.nameserver, fqdn, addr) == 0) return 0;
    }
    for (i = 0; i < r.nsearch; i++) {
        snprintf(fqdn, sizeof(fqdn), "%s.%s", name, r.search[i]);
        rc = query_a(r.nameserver, fqdn, addr);
        if (rc == 0) return 0;
        if (rc < 0) fprintf(stderr, "smoke: no answer from %s for %s\n", r.nameserver, fqdn);
    }
    fprintf(stderr, "smoke: %s did not resolve via %s\n", name, r.nameserver);
    return -1;
}

static int serve(int port) {
    char host[256] = "unknown", req[4096], resp[512], body[300];
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    int one = 1, s, c, len;
    signal(SIGTERM, on_term);
    signal(SIGPIPE, SIG_IGN);
    gethostname(host, sizeof(host) - 1);
    snprintf(body, sizeof(body), "smoke %s\n", host);
    len = snprintf(resp, sizeof(resp),
                   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n%s", strlen(body), body);
    s = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) || listen(s, 64)) {
        perror("smoke: listen");
        return 1;
    }
    fprintf(stderr, "smoke: serving on :%d as %s\n", port, host);
    for (;;) {
        struct timeval tv = {.tv_sec = 5};
        c = accept(s, NULL, NULL);
        if (c < 0) continue;
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        /* Requests are tiny; one read is enough to consume them. */
        if (read(c, req, sizeof(req)) > 0) (void)!write(c, resp, len);
        close(c);
    }
}

static int get(const char *name, int port) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval tv = {.tv_sec = 5};
    char buf[4096], req[512];
    int s, n, total = 0;
    char *body;
    if (resolve(name, &sa.sin_addr) != 0) return 1;
    fprintf(stderr, "smoke: %s is %s\n", name, inet_ntoa(sa.sin_addr));
    s = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
        fprintf(stderr, "smoke: connect %s:%d: %s\n", inet_ntoa(sa.sin_addr), port, strerror(errno));
        return 1;
    }
    n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", name);
    if (write(s, req, n) != n) return 1;
    while (total < (int)sizeof(buf) - 1 && (n = read(s, buf + total, sizeof(buf) - 1 - total)) > 0) total += n;
    buf[total] = 0;
    close(s);
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0) {
        fprintf(stderr, "smoke: unexpected response: %.80s\n", buf);
        return 1;
    }
    body = strstr(buf, "\r\n\r\n");
    fputs(body ? body + 4 : buf, stdout);
    return 0;
}

static int write_file(const char *path) {
    char host[256] = "unknown", want[320], got[320];
    int fd, n;
    gethostname(host, sizeof(host) - 1);
    n = snprintf(want, sizeof(want), "smoke %s uid=%u\n", host, (unsigned)getuid());
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, want, n) != n || fsync(fd) != 0 || close(fd) != 0) {
        fprintf(stderr, "smoke: write %s: %s\n", path, strerror(errno));
        return 1;
    }
    fd = open(path, O_RDONLY);
    if (fd < 0 || read(fd, got, sizeof(got)) != n || memcmp(got, want, n) != 0) {
        fprintf(stderr, "smoke: %s did not read back what was written\n", path);
        return 1;
    }
    close(fd);
    fprintf(stderr, "smoke: wrote %s", want);
    return 0;
}

int main(int argc, char **argv) {
    struct in_addr addr;
    if (argc == 3 && !strcmp(argv[1], "serve")) return serve(atoi(argv[2]));
    if (argc == 4 && !strcmp(argv[1], "resolve")) {
        if (query_a(argv[3], argv[2], &addr) != 0) {
            fprintf(stderr, "smoke: %s did not resolve via %s\n", argv[2], argv[3]);
            return 1;
        }
        printf("%s\n", inet_ntoa(addr));
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "resolve")) {
        if (resolve(argv[2], &addr) != 0) return 1;
        printf("%s\n", inet_ntoa(addr));
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "get")) return get(argv[2], atoi(argv[3]));
    if (argc == 4 && !strcmp(argv[1], "write")) return write_file(argv[2]) ? 1 : serve(atoi(argv[3]));
    fprintf(stderr, "usage: smoke serve PORT | smoke resolve NAME [NAMESERVER] | smoke get NAME PORT"
                    " | smoke write FILE PORT\n");
    return 2;
}
