// Latchkey admin UI: the one script behind the server-rendered pages. It sends forms
// and buttons to the JSON API with the session's CSRF token, draws the pairing QR code,
// polls for pending phones, plays fMP4 cameras through MediaSource, and renders the
// router's answers. Everything from the server is put into the page as text, except the
// QR code's SVG, which the gateway itself generated.
'use strict';

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const csrf = () => ($('meta[name=csrf]') || {}).content || '';

function flash(message, bad) {
  const p = $('#flash');
  if (!p) return;
  p.textContent = message;
  p.className = bad ? 'error' : 'ok';
}

async function call(method, url, body) {
  const opts = { method, headers: { 'X-CSRF-Token': csrf() }, credentials: 'same-origin' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(url, opts);
  let data = null;
  try { data = await r.json(); } catch (_) { /* not JSON */ }
  if (r.status === 401 && !url.startsWith('/login')) { location.href = '/login'; }
  if (!r.ok) throw new Error((data && data.error) || `${r.status} ${r.statusText}`);
  return data;
}

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function formData(form) {
  const out = {};
  if ($$('input[name=camera]', form).length) out.cameras = [];
  for (const f of form.elements) {
    if (!f.name) continue;
    if (f.name === 'camera') { if (f.checked) out.cameras.push(f.value); continue; }
    if (f.type === 'checkbox') out[f.name] = f.checked;
    else if (f.name.endsWith('_secs')) out[f.name] = f.value === '' ? null : Number(f.value);
    else out[f.name] = f.value;
  }
  if (Array.isArray(out.cameras)) out.cameras = out.cameras.join(',');
  return out;
}

async function then(what, data) {
  if (!what) return;
  if (what === 'reload') location.reload();
  else if (what === 'pair') showPairing(data);
  else if (what.startsWith('/')) location.href = what;
}

// Forms that post JSON to the API: <form data-api="/api/..." data-then="...">.
document.addEventListener('submit', async (ev) => {
  const form = ev.target;
  if (form.dataset.plan !== undefined) { ev.preventDefault(); return showPlan(form); }
  if (!form.dataset.api) return;
  ev.preventDefault();
  const body = formData(form);
  if ('password2' in body) {
    if (body.password !== body.password2) { flash('The two passwords differ.', true); return; }
    delete body.password2;
  }
  try {
    const data = await call('POST', form.dataset.api, body);
    flash('Done.');
    await then(form.dataset.then, data);
  } catch (e) { flash(e.message, true); }
});

// Buttons that post: <button data-post="/api/..." data-confirm="..." data-then="...">.
document.addEventListener('click', async (ev) => {
  const b = ev.target.closest('button[data-post]');
  if (!b) return;
  ev.preventDefault();
  if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) return;
  b.disabled = true;
  try {
    const data = await call('POST', b.dataset.post);
    flash(b.textContent.trim() + ': done.');
    await then(b.dataset.then || 'reload', data);
  } catch (e) { flash(e.message, true); b.disabled = false; }
});

// --- Pair a phone -------------------------------------------------------------------
let countdownTimer = null;
function showPairing(data) {
  const section = $('#pairing');
  section.hidden = false;
  // The SVG is the gateway's own rendering of the URI, not user input.
  $('#qr').innerHTML = data.svg || '';
  $('#pair-uri').textContent = data.uri;
  const end = Date.now() + data.expires_in_secs * 1000;
  clearInterval(countdownTimer);
  const tick = () => {
    const left = Math.max(0, Math.round((end - Date.now()) / 1000));
    $('#countdown').textContent = left > 0 ? `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}` : 'expired';
    if (left === 0) { clearInterval(countdownTimer); $('#qr').innerHTML = ''; $('#pair-uri').textContent = '(expired: make a new code)'; }
  };
  tick();
  countdownTimer = setInterval(tick, 1000);
}

async function pollPending() {
  const body = $('#pending tbody');
  if (!body) return;
  try {
    const devices = await call('GET', '/api/devices');
    const pending = devices.filter((d) => d.state === 'pending');
    body.replaceChildren(...pending.map((d) => {
      const tr = el('tr', null, { 'data-device': d.id });
      // The id beside the name: names are data, the id is what an action is attributed to.
      const who = el('td', d.name);
      who.append(el('br'), el('small', d.id));
      tr.append(who, el('td', d.role), el('td', d.code, { class: 'code' }), el('td', d.last_addr || '-'));
      const td = el('td');
      td.append(el('button', 'Confirm', { 'data-post': `/api/devices/${encodeURIComponent(d.id)}/confirm`, 'data-then': 'none' }),
        el('button', 'Reject', { 'data-post': `/api/devices/${encodeURIComponent(d.id)}/reject`, 'data-then': 'none', class: 'danger' }));
      tr.append(td);
      return tr;
    }));
  } catch (e) { /* shown on the next action */ }
}

// --- Cameras --------------------------------------------------------------------------
async function playMse(video) {
  if (!window.MediaSource) { video.replaceWith(el('p', 'This browser cannot play fMP4 (no MediaSource).')); return; }
  const cams = await call('GET', '/api/cameras');
  const cam = cams.find((c) => c.id === video.dataset.camera) || {};
  const type = `video/mp4; codecs="${cam.codec_string || 'avc1.42E01E'}"`;
  if (!MediaSource.isTypeSupported(type)) { video.replaceWith(el('p', `This browser cannot decode ${type}.`)); return; }
  const ms = new MediaSource();
  video.src = URL.createObjectURL(ms);
  await new Promise((ok) => ms.addEventListener('sourceopen', ok, { once: true }));
  const sb = ms.addSourceBuffer(type);
  const r = await fetch(video.dataset.mse, { credentials: 'same-origin' });
  const reader = r.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    if (sb.updating) await new Promise((ok) => sb.addEventListener('updateend', ok, { once: true }));
    sb.appendBuffer(value);
    await new Promise((ok) => sb.addEventListener('updateend', ok, { once: true }));
    // Stay live: jump forward when more than two seconds behind, and trim old data.
    const b = sb.buffered;
    if (b.length) {
      const end = b.end(b.length - 1);
      if (end - video.currentTime > 2) video.currentTime = end - 0.3;
      if (video.currentTime - b.start(0) > 30 && !sb.updating) {
        sb.remove(b.start(0), video.currentTime - 10);
        await new Promise((ok) => sb.addEventListener('updateend', ok, { once: true }));
      }
    }
    if (video.paused) video.play().catch(() => {});
  }
}

async function refreshCameras() {
  try {
    const cams = await call('GET', '/api/cameras');
    for (const c of cams) {
      const row = $(`tr[data-camera="${CSS.escape(c.id)}"]`);
      if (!row) continue;
      const cells = row.children;
      cells[2].textContent = c.state + (c.error ? ` (${c.error})` : '');
      cells[3].textContent = c.codec || '-';
      cells[4].textContent = c.width ? `${c.width}×${c.height}` : '-';
      cells[5].textContent = c.viewers;
      cells[6].textContent = c.upstream_sessions;
    }
  } catch (_) { /* try again */ }
}

// --- Remote access ------------------------------------------------------------------
function kv(dl, k, v) { dl.append(el('dt', k), el('dd', v === null || v === undefined || v === '' ? '-' : v)); }

function renderStatus(s) {
  const box = $('#remote-status');
  box.replaceChildren();
  box.append(el('p', s.diagnosis, { class: `verdict verdict-${s.verdict}`, id: 'diagnosis' }));
  const dl = el('dl');
  kv(dl, 'Router', s.router ? `${s.router.address} (${s.router.igd || 'IGD'})` : (s.router_error || 'none found'));
  kv(dl, 'External IPv4', s.external_ipv4);
  kv(dl, 'Global IPv6', (s.global_ipv6 || []).join(', '));
  kv(dl, 'Approval', s.approval ? `approved by ${s.approval.approved_by}, lease ${s.approval.lease_secs} s` : 'none: nothing is open');
  kv(dl, 'Phones reach the gateway at', (s.published_addresses || []).join(', '));
  box.append(dl);
  for (const m of s.mappings || []) {
    box.append(el('p', `${m.kind}: ${m.protocol} ${m.external || ''} → ${m.internal}, lease ${m.lease_secs} s, renewed at half-life while approved`));
  }
}

async function loadStatus() {
  try { renderStatus(await call('GET', '/api/remote')); } catch (e) { $('#remote-status').replaceChildren(el('p', e.message, { class: 'error' })); }
}

let plannedBody = null;
async function showPlan(form) {
  const b = formData(form);
  plannedBody = { ipv4: b.ipv4, ipv6: b.ipv6, lease_secs: b.lease_secs };
  const qs = new URLSearchParams({ ipv4: b.ipv4, ipv6: b.ipv6, lease_secs: b.lease_secs });
  try {
    const plan = await call('GET', `/api/remote/plan?${qs}`);
    const box = $('#plan-body');
    box.replaceChildren();
    const ul = el('ul');
    for (const r of plan.requests) {
      ul.append(el('li', `${r.action} on ${r.router || 'the router'}: ${r.protocol}` +
        (r.external_port ? ` external port ${r.external_port}` : '') + ` → ${r.internal}` +
        (r.remote ? ` from ${r.remote}` : '') + `, lease ${r.lease_secs} s, renewed ${r.renewal}`));
    }
    box.append(ul);
    for (const p of plan.problems) box.append(el('p', p, { class: 'error' }));
    $('#remote-plan').hidden = false;
    $('#remote-open').disabled = plan.requests.length === 0;
  } catch (e) { flash(e.message, true); }
}

async function routerAudit() {
  const box = $('#router-mappings');
  box.replaceChildren(el('p', 'Asking the router…'));
  try {
    const a = await call('GET', '/api/remote/audit');
    const t = el('table');
    const head = el('tr');
    for (const h of ['#', 'Protocol', 'External port', 'Points to', 'Description', 'Lease', 'Whose', '']) head.append(el('th', h));
    t.append(head);
    for (const m of a.mappings) {
      const tr = el('tr');
      tr.append(el('td', m.index), el('td', m.protocol), el('td', m.external_port), el('td', `${m.internal_client}:${m.internal_port}`),
        el('td', m.description), el('td', m.lease_secs ? `${m.lease_secs} s` : 'permanent'),
        el('td', m.owner + (m.camera ? ` (${m.camera})` : '') + (m.warning ? ` — ${m.warning}` : '')));
      const td = el('td');
      if (m.owner !== 'latchkey') td.append(el('button', 'Remove', { 'data-post': `/api/remote/audit/${m.index}/remove`, 'data-then': 'none', class: 'danger' }));
      tr.append(td);
      t.append(tr);
    }
    box.replaceChildren(t);
    if (!a.mappings.length) box.append(el('p', 'The router holds no mappings.'));
  } catch (e) { box.replaceChildren(el('p', e.message, { class: 'error' })); }
}

// --- Start-up -----------------------------------------------------------------------
document.addEventListener('DOMContentLoaded', () => {
  for (const t of $$('time[data-ts]')) t.textContent = new Date(Number(t.dataset.ts) * 1000).toLocaleString();
  const token = $('#setup-token');
  if (token) token.value = decodeURIComponent(location.hash.slice(1));
  if ($('#pending')) { pollPending(); setInterval(pollPending, 1500); }
  for (const v of $$('video[data-mse]')) playMse(v).catch((e) => flash(`${v.dataset.camera}: ${e.message}`, true));
  if ($('#cameras')) setInterval(refreshCameras, 2000);
  if ($('#remote-status')) loadStatus();
  const open = $('#remote-open');
  if (open) {
    open.addEventListener('click', async () => {
      if (!plannedBody) return;
      open.disabled = true;
      try { renderStatus(await call('POST', '/api/remote/open', plannedBody)); flash('Remote access approved and opened.'); } catch (e) { flash(e.message, true); }
      open.disabled = false;
    });
  }
  const ra = $('#router-audit');
  if (ra) ra.addEventListener('click', routerAudit);
});
document.addEventListener('click', (ev) => {
  // After a Remove in the router table, read the table again.
  if (ev.target.closest('#router-mappings button[data-post]')) setTimeout(routerAudit, 500);
});
