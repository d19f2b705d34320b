// The two HTML pages. Everything user-supplied goes through escapeHtml.

export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function page(title, body, footer) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}.counter{font-size:4rem;font-weight:700;margin:.5rem 0}
button,input{font-size:1rem;padding:.4rem .8rem}form{display:inline-block;margin-right:.5rem}
footer{margin-top:2rem;color:#666;font-size:.85rem}.pod{font-family:monospace;background:#eef;padding:.1rem .3rem}
</style></head><body>${body}<footer>${footer}</footer></body></html>`;
}

function footer(info) {
  return `served by pod <span class="pod">${escapeHtml(info.pod)}</span> · strategy ${escapeHtml(info.strategy)} · session in the sessionplane store`;
}

export function loginPage(info, error) {
  const err = error ? `<p style="color:#b00">${escapeHtml(error)}</p>` : "";
  return page(
    "sessionplane demo: log in",
    `<h1>sessionplane demo</h1><p>Log in with any name; your session lives in the store, so every frontend pod knows you.</p>${err}
<form method="post" action="/login"><input name="username" placeholder="your name" maxlength="64" required autofocus> <button type="submit">Log in</button></form>`,
    footer(info),
  );
}

export function counterPage(info, user, counter) {
  return page(
    "sessionplane demo",
    `<h1>Logged in as ${escapeHtml(user)}</h1><p>Your counter:</p><div class="counter" id="counter">${counter}</div>
<form method="post" action="/increment"><button type="submit">+1</button></form>
<form method="post" action="/logout"><button type="submit">Log out</button></form>
<p>Pod: <span class="pod" id="pod">${escapeHtml(info.pod)}</span> (any frontend pod can answer: the session is in the store)</p>`,
    footer(info),
  );
}
