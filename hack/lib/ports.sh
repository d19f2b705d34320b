# Loopback ports for the benches' local processes. Sourced after WORK is set.
# shellcheck shell=bash
#
# A port from bind(0)-and-close can come back from the next such call (about one run in
# three of 100 calls did here) or be given to an outgoing connection before the process
# it was meant for binds it. These come from below the kernel's ephemeral range, each once
# per run, in 16000..22767 so that a Redis Cluster bus port (+10000) stays below 32768 too.

echo $((($$ * 997) % 6768)) >"$WORK/.next-port"

# free_port: prints a free port.
free_port() { _next_port plain; }
# free_bus_port: prints a free port P with P+10000 free as well.
free_bus_port() { _next_port bus; }

_next_port() {
  python3 - "$WORK/.next-port" "$1" <<'PY'
import socket, sys
state, bus = sys.argv[1], sys.argv[2] == "bus"
n = int(open(state).read())
for _ in range(6768):
    p, n = 16000 + n % 6768, n + 1
    held = []
    try:
        for q in [p, p + 10000] if bus else [p]:
            s = socket.socket()
            held.append(s)
            s.bind(("127.0.0.1", q))
        break
    except OSError:
        p = None
    finally:
        for s in held:
            s.close()
open(state, "w").write(str(n))
if p is None:
    sys.exit("no free loopback port in 16000..22767")
print(p)
PY
}
