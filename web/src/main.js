// The claim page. Reads the link from the URL fragment (never sent to the server),
// asks the broker for the deposit's public state, and signs and submits a claim only
// after a person's click (mail scanners run pages with scripts: loading changes nothing).

import * as p from './protocol.js';

const $ = (id) => document.getElementById(id);
const ZERO = '0x0000000000000000000000000000000000000000';

const ui = {
  status(text, cls) {
    const s = $('status');
    s.textContent = text;
    s.className = cls || '';
  },
  show(id, yes = true) {
    $(id).hidden = !yes;
  },
};

let link = null;
let info = null;
let wallet = null;
let payTo = null;
let polling = false;

function amountText(units) {
  if (!info.asset) return info.deposit ? `${units} base units of token ${info.deposit.token}` : `${units} base units`;
  return `${p.formatUnits(units, info.asset.decimals)} ${info.asset.symbol}`;
}

// The one date format of Spring Mail's mail and messages: 2026-12-06 02:13:09 UTC.
function dateText(unix) {
  return new Date(unix * 1000).toISOString().slice(0, 19).replace('T', ' ') + ' UTC';
}

// The sender as the notification names them (`?from=`, not part of the link and not
// verified: the mail is where it comes from).
function senderText() {
  const from = new URLSearchParams(location.search).get('from');
  return from && from.trim() ? from.trim().slice(0, 200) : null;
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
    credentials: 'omit',
    cache: 'no-store',
    referrerPolicy: 'no-referrer',
  });
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  return { status: res.status, ok: res.ok, data };
}

const STATES = {
  open: 'Waiting for you to claim it',
  claimed: 'Claimed',
  refunded: 'Returned to the sender',
  expired: 'Expired: it can no longer be claimed',
  unknown: 'No such payment',
};

function render() {
  ui.show('deposit', !!info.deposit || info.state === 'claimed' || info.state === 'refunded');
  const from = senderText();
  ui.show('from-label', !!from);
  ui.show('from', !!from);
  if (from) $('from').textContent = `${from} (as named in the mail)`;
  if (info.deposit) {
    $('amount').textContent = amountText(info.deposit.amount);
    $('expiry').textContent = dateText(info.deposit.expiry);
  } else {
    $('amount').textContent = info.amount ? amountText(info.amount) : '—';
    $('expiry').textContent = '—';
  }
  $('state').textContent = STATES[info.state] || info.state;
  document.body.dataset.state = info.state;
  const sub = info.submission;
  if (info.state === 'claimed') {
    ui.status(`This payment has been claimed${info.claimedTo ? ' to ' + p.formatAddress(link.chainId, info.claimedTo) : ''}.`, 'ok');
    showTx(info.claimTx, 'Mined: the money is in the wallet');
    ui.show('link-claim', false);
    ui.show('email-claim', false);
    return;
  }
  if (info.state === 'refunded') {
    ui.status('This payment was returned to its sender, so there is nothing left to claim.', 'error');
    return;
  }
  if (info.state === 'expired') {
    ui.status(`This payment expired on ${dateText(info.deposit.expiry)}. It can no longer be claimed; it can only be returned to its sender.`, 'error');
    return;
  }
  if (sub && (sub.state === 'accepted' || sub.state === 'submitting' || sub.state === 'submitted')) {
    ui.status('Your claim is on its way.');
    showTx(sub.txId, sub.txId ? 'Sent; waiting for the next block' : 'Accepted; sending the transaction');
    ui.show('link-claim', false);
    poll();
    return;
  }
  if (info.mode === 'email') {
    ui.status('Choose where the money should go, then reply to the notification mail with your claim.');
    ui.show('email-claim');
    $('email-address').placeholder = addressPlaceholder();
    return;
  }
  if (info.fee === null) {
    ui.status('This broker does not release payments in this token. Claim it with the springmail command instead.', 'error');
    return;
  }
  ui.status('Choose where the money should go, then press Claim.');
  $('address-label').textContent = p.isQtum(link.chainId) ? 'Your Qtum address (Q… or q…)' : 'Your address (0x…)';
  $('address').placeholder = addressPlaceholder();
  ui.show('link-claim');
}

function addressPlaceholder() {
  return p.isQtum(link.chainId) ? (link.chainId === 81 ? 'Q…' : 'q…') : '0x…';
}

function showTx(tx, step) {
  ui.show('progress');
  const steps = $('steps');
  if (step && steps.lastElementChild?.textContent !== step) {
    const li = document.createElement('li');
    li.textContent = step;
    steps.appendChild(li);
  }
  $('tx').textContent = tx || 'not sent yet';
}

function updateClaimButton() {
  const dest = document.querySelector('input[name=dest]:checked')?.value;
  let ready = false;
  payTo = null;
  if (dest === 'address') {
    const text = $('address').value;
    if (text.trim()) {
      try {
        payTo = p.parseAddress(link.chainId, text);
        if (payTo === ZERO) throw new Error('the zero address cannot receive money');
        $('address-error').textContent = '';
        ready = true;
      } catch (e) {
        payTo = null;
        $('address-error').textContent = `Not a usable address: ${e.message}.`;
      }
    } else {
      $('address-error').textContent = '';
    }
  } else if (dest === 'wallet' && wallet) {
    payTo = p.payoutAddress(link.chainId, wallet.secret);
    ready = $('saved').checked;
  }
  $('claim').disabled = !ready;
}

function makeWallet() {
  wallet = p.newWallet(link.chainId);
  const ol = $('phrase');
  ol.textContent = '';
  for (const w of wallet.phrase.split(' ')) {
    const li = document.createElement('li');
    li.textContent = w;
    ol.appendChild(li);
  }
  $('path').textContent = wallet.path;
  $('wallet-address').textContent = p.formatAddress(link.chainId, p.payoutAddress(link.chainId, wallet.secret));
  $('wif').textContent = p.toWif(link.chainId, wallet.secret);
  $('make-wallet').hidden = true;
  ui.show('wallet');
  $('saved').focus();
  updateClaimButton();
}

async function downloadEncrypted() {
  const password = $('download-password').value;
  if (password.length < 8) {
    ui.status('Choose a password of at least 8 characters for the file.', 'error');
    return;
  }
  // AES-GCM with a PBKDF2-SHA256 key (600,000 rounds), WebCrypto only.
  const enc = new TextEncoder();
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const base = await crypto.subtle.importKey('raw', enc.encode(password), 'PBKDF2', false, ['deriveKey']);
  const key = await crypto.subtle.deriveKey(
    { name: 'PBKDF2', salt, iterations: 600000, hash: 'SHA-256' }, base,
    { name: 'AES-GCM', length: 256 }, false, ['encrypt'],
  );
  const plain = JSON.stringify({ phrase: wallet.phrase, path: wallet.path, wif: p.toWif(link.chainId, wallet.secret) });
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, enc.encode(plain)));
  const file = {
    format: 'springmail-wallet-1', kdf: 'PBKDF2-SHA256', iterations: 600000, cipher: 'AES-256-GCM',
    salt: p.bytesToHex(salt), iv: p.bytesToHex(iv), ciphertext: p.bytesToHex(ct),
    address: $('wallet-address').textContent,
  };
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([JSON.stringify(file, null, 2)], { type: 'application/json' }));
  a.download = 'springmail-wallet.json';
  a.click();
  URL.revokeObjectURL(a.href);
}

async function claim() {
  if (!payTo) return;
  $('claim').disabled = true;
  ui.status('Signing your claim here, in the browser…');
  const deadline = Math.min(info.now + 3600, info.deposit.expiry);
  const body = p.signClaim(link, info.deposit, payTo, info.fee, deadline);
  showTx(null, 'Signed in your browser');
  const res = await api('POST', '/api/claims', body);
  if (!res.ok) {
    const d = res.data || {};
    ui.status(d.detail || d.title || `The broker refused the claim (HTTP ${res.status}).`, 'error');
    $('claim').disabled = false;
    return;
  }
  ui.show('link-claim', false);
  showTx(res.data.txId, res.data.txId ? 'Sent; waiting for the next block' : 'Accepted by the broker');
  ui.status('Your claim is on its way.');
  poll();
}

async function refresh() {
  const res = await api('GET', `/api/deposits/${link.claimKey}`);
  if (res.status === 404) {
    info = null;
    ui.status('No payment exists for this link. If it was just sent, try again in a minute; otherwise the link may be damaged.', 'error');
    document.body.dataset.state = 'unknown';
    return false;
  }
  if (!res.ok) {
    ui.status((res.data && res.data.detail) || `The broker could not be reached (HTTP ${res.status}). Try again later.`, 'error');
    return false;
  }
  info = res.data;
  return true;
}

async function poll() {
  if (polling) return;
  polling = true;
  for (;;) {
    await new Promise((r) => setTimeout(r, 1500));
    if (!(await refresh())) continue;
    const sub = info.submission;
    if (info.state === 'claimed') {
      render();
      break;
    }
    if (sub && sub.state === 'refused') {
      ui.status(`The claim was not paid: ${sub.error || 'refused'}`, 'error');
      document.body.dataset.state = 'refused';
      break;
    }
    if (sub && sub.txId) showTx(sub.txId, 'Sent; waiting for the next block');
  }
  polling = false;
}

function emailClaim() {
  let to;
  try {
    to = p.parseAddress(link.chainId, $('email-address').value);
  } catch (e) {
    $('email-address-error').textContent = `Not a usable address: ${e.message}.`;
    return;
  }
  const deadline = Math.min(info.now + 7 * 86400, info.deposit.expiry);
  const body = p.signClaim(link, info.deposit, to, info.fee ?? 0, deadline);
  const block = p.renderClaimBlock(body, link.salt, info.asset);
  $('claim-block').textContent = block;
  const mailto = `mailto:${encodeURIComponent(info.replyTo || '')}?subject=${encodeURIComponent('Claim')}&body=${encodeURIComponent(block)}`;
  $('mailto').href = mailto;
  ui.show('email-out');
  ui.status('Send the claim below as a reply from the address the payment was sent to.');
  showTx(null, 'Signed in your browser; waiting for your reply to reach the broker');
  poll();
}

async function start() {
  const fragment = location.hash.slice(1);
  if (!fragment) {
    ui.status('This page opens from the link in your payment notification. That link has a part after # which is missing here.', 'error');
    document.body.dataset.state = 'tampered';
    return;
  }
  try {
    link = p.parseLink(fragment);
  } catch (e) {
    ui.status(`This link is damaged (${e.message}). Copy the whole link from your notification mail and open it again.`, 'error');
    document.body.dataset.state = 'tampered';
    return;
  }
  if (!(await refresh())) return;
  if (info.chainId !== link.chainId || info.escrow.toLowerCase() !== link.escrow) {
    ui.status('This link is for another payment service than this one. Open it from the mail it came in.', 'error');
    document.body.dataset.state = 'tampered';
    return;
  }
  render();
}

document.addEventListener('DOMContentLoaded', () => {
  for (const r of document.querySelectorAll('input[name=dest]')) {
    r.addEventListener('change', () => {
      ui.show('address-form', $('dest-address').checked);
      ui.show('wallet-form', $('dest-wallet').checked);
      updateClaimButton();
    });
  }
  $('address').addEventListener('input', updateClaimButton);
  $('saved').addEventListener('change', updateClaimButton);
  $('make-wallet').addEventListener('click', makeWallet);
  $('claim').addEventListener('click', claim);
  $('download').addEventListener('click', () => ui.show('download-form'));
  $('download-go').addEventListener('click', downloadEncrypted);
  $('email-make').addEventListener('click', emailClaim);
  $('email-address').addEventListener('input', () => {
    $('email-make').disabled = !$('email-address').value.trim();
    $('email-address-error').textContent = '';
  });
  $('copy').addEventListener('click', async () => {
    await navigator.clipboard.writeText($('claim-block').textContent);
    $('copy').textContent = 'Copied';
  });
  window.addEventListener('hashchange', () => location.reload());
  start();
});
