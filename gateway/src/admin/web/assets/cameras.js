// Latchkey admin UI, cameras page: "Find cameras" (WS-Discovery through the gateway) and
// the add form (ONVIF address + user + password, or a stream URL). Self-contained; every
// string from the gateway or a camera is put into the page as text only. The password
// field is sent once and cleared; the gateway never sends it back.
'use strict';
(() => {
  const q = (sel) => document.querySelector(sel);
  const token = () => (q('meta[name=csrf]') || {}).content || '';
  const say = (message, bad) => {
    const p = q('#flash');
    if (p) { p.textContent = message; p.className = bad ? 'error' : 'ok'; }
  };
  async function post(url, body) {
    const r = await fetch(url, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'X-CSRF-Token': token(), 'Content-Type': 'application/json' },
      body: JSON.stringify(body || {}),
    });
    let data = null;
    try { data = await r.json(); } catch (_) { /* not JSON */ }
    if (!r.ok) throw new Error((data && data.error) || `${r.status} ${r.statusText}`);
    return data;
  }
  const cell = (tr, text) => { const td = document.createElement('td'); td.textContent = text == null ? '-' : String(text); tr.append(td); return td; };
  const form = q('#add-camera');
  if (!form) return;
  const field = (name) => form.elements.namedItem(name);

  function hostPort(xaddr) {
    try { return new URL(xaddr).host; } catch (_) { return ''; }
  }

  q('#discover-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = q('#found tbody');
    body.replaceChildren();
    say('Looking for cameras…');
    try {
      const found = await post('/api/cameras/discover', { address: ev.target.elements.namedItem('address').value });
      for (const f of found) {
        const tr = document.createElement('tr');
        tr.dataset.address = f.source;
        const d = f.device || {};
        cell(tr, f.source); cell(tr, d.maker); cell(tr, d.model); cell(tr, d.firmware);
        cell(tr, (f.already_added || []).join(', ') || '-');
        const td = cell(tr, '');
        const use = document.createElement('button');
        use.type = 'button'; use.textContent = 'Add this camera'; use.className = 'use-camera';
        use.addEventListener('click', () => {
          field('address').value = hostPort(f.xaddr) || f.source;
          field('url').value = '';
          field('password').focus();
          say(`Now give the user and password of the camera at ${f.source}.`);
        });
        td.append(use);
        body.append(tr);
      }
      say(found.length ? `${found.length} camera(s) answered.` : 'No ONVIF camera answered; try its address.');
    } catch (e) { say(e.message, true); }
  });

  function target() {
    return {
      address: field('address').value.trim(), username: field('username').value,
      password: field('password').value,
      main_profile: field('main_profile').value || null, sub_profile: field('sub_profile').value || null,
    };
  }

  function showChoice(o) {
    const lines = [];
    const d = o.device || {};
    lines.push(`${d.maker || '?'} ${d.model || '?'}, firmware ${d.firmware || '?'}`);
    const p = (s) => s ? `${s.profile.token} (${s.profile.name}) ${s.profile.encoding} ${s.profile.width}x${s.profile.height} at ${s.uri}` : 'none';
    lines.push(`main stream: ${p(o.main)}`);
    lines.push(`sub-stream: ${p(o.sub)}`);
    lines.push(`snapshot: ${o.snapshot_uri || 'none'}`);
    q('#camera-choice').textContent = lines.join('\n');
    for (const name of ['main_profile', 'sub_profile']) {
      const sel = field(name);
      const keep = sel.value;
      sel.replaceChildren(new Option('automatic', ''));
      for (const pr of o.profiles || []) sel.append(new Option(`${pr.token}: ${pr.encoding} ${pr.width}x${pr.height}`, pr.token));
      sel.value = keep;
    }
  }

  q('#inspect-camera').addEventListener('click', async () => {
    say('Asking the camera…');
    try { showChoice(await post('/api/cameras/onvif/inspect', target())); say('This is what will be used; change the profiles if you like.'); }
    catch (e) { say(e.message, true); }
  });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const id = field('id').value.trim();
    say('Connecting to the camera…');
    try {
      let r;
      if (field('address').value.trim()) {
        r = await post('/api/cameras/onvif/add', Object.assign({ id }, target()));
        if (r.onvif) showChoice(r.onvif);
      } else {
        r = await post('/api/cameras/add', { id, url: field('url').value.trim(), username: field('username').value || null, password: field('password').value || null });
      }
      field('password').value = '';
      const t = r.test || {};
      say(`Camera ${r.id} added: ${t.codec || '?'} ${t.width || '?'}x${t.height || '?'}.`);
      setTimeout(() => location.reload(), 1500);
    } catch (e) { say(e.message, true); }
  });

  const edit = q('#edit-camera');
  edit.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = (n) => edit.elements.namedItem(n).value.trim();
    const changes = {};
    for (const n of ['id', 'url', 'username']) if (f(n)) changes[n] = f(n);
    const pw = edit.elements.namedItem('password').value;
    if (pw) changes.password = pw;
    try {
      const r = await post(`/api/cameras/${encodeURIComponent(f('camera'))}/edit`, changes);
      edit.elements.namedItem('password').value = '';
      say(`Camera ${r.id} saved.`);
      setTimeout(() => location.reload(), 1500);
    } catch (e) { say(e.message, true); }
  });
})();
