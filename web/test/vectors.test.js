// The page's protocol code against the SDK's vectors: docs/PROTOCOL.md (the checked
// JSON block), sdk/tests/vectors/link.json and qtum.json. `npm test` in web/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as p from '../src/protocol.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const read = (f) => readFileSync(root + f, 'utf8');
const hex = (b) => '0x' + p.bytesToHex(b);

function escrowVectors() {
  const md = read('docs/PROTOCOL.md');
  const block = md.split('<!-- vectors:begin -->')[1].split('<!-- vectors:end -->')[0];
  return JSON.parse(block.replace(/^\s*```json/, '').replace(/```\s*$/, ''));
}

test('escrow vectors: deposit hash, domain, claim and attest digests, signatures', () => {
  const v = escrowVectors();
  assert.equal(v.vectors.length, 3);
  const secret = p.hexToBytes(p.strip0x(v.keys.claim_key_secret));
  const watcher = p.hexToBytes(p.strip0x(v.keys.watcher_secret));
  assert.equal(p.evmAddress(secret), v.keys.claim_key);
  assert.equal(p.evmAddress(watcher), v.keys.watcher);
  for (const x of v.vectors) {
    assert.equal(hex(p.encodeDeposit(x.deposit)), x.deposit_encoding, x.name);
    const dh = p.depositHash(x.deposit);
    assert.equal(hex(dh), x.deposit_hash, x.name);
    assert.equal(hex(p.domainSeparator(x.chain_id, x.escrow)), x.domain_separator, x.name);
    const auth = {
      claimKey: x.claim.claim_key,
      depositHash: dh,
      to: x.claim.to,
      maxFee: x.claim.max_fee,
      deadline: x.claim.deadline,
    };
    const digest = p.claimDigest(x.chain_id, x.escrow, auth);
    assert.equal(hex(digest), x.claim_digest, x.name);
    assert.equal(hex(p.signDigest(secret, digest)), x.claim_signature, x.name);
    if (x.attest_digest) {
      const ad = p.attestDigest(x.chain_id, x.escrow, auth);
      assert.equal(hex(ad), x.attest_digest, x.name);
      assert.equal(hex(p.signDigest(watcher, ad)), x.attest_signature, x.name);
    }
    // What the page posts carries the same signature.
    const body = p.signClaim(
      { chainId: x.chain_id, escrow: x.escrow, secret, claimKey: p.evmAddress(secret) },
      x.deposit, x.claim.to, x.claim.max_fee, x.claim.deadline,
    );
    assert.equal(body.signature, x.claim_signature);
    assert.equal(body.depositHash, x.deposit_hash);
  }
});

test('link vectors: encode and every parse case', () => {
  const v = JSON.parse(read('sdk/tests/vectors/link.json'));
  for (const e of v.encode) {
    const link = {
      chainId: e.chain_id, escrow: e.escrow,
      secret: p.hexToBytes(p.strip0x(e.secret)), salt: p.hexToBytes(p.strip0x(e.salt)),
    };
    assert.equal(p.linkToBare(link), e.bare);
    const back = p.parseLink(e.url);
    assert.equal(back.chainId, e.chain_id);
    assert.equal(back.escrow, e.escrow.toLowerCase());
    if (e.claim_key) assert.equal(back.claimKey, e.claim_key);
  }
  for (const c of v.parse) {
    if (c.error) {
      assert.throws(() => p.parseLink(c.input), (err) => {
        assert.equal(err.kind, c.error, c.name);
        if (c.position !== undefined) assert.equal(err.position, c.position, c.name);
        if (c.got !== undefined) assert.equal(err.got, c.got, c.name);
        return true;
      }, c.name);
    } else {
      const l = p.parseLink(c.input);
      assert.equal(l.chainId, c.expected.chain_id, c.name);
      assert.equal(l.escrow, c.expected.escrow.toLowerCase(), c.name);
      assert.equal(hex(l.secret), c.expected.secret, c.name);
      assert.equal(hex(l.salt), c.expected.salt, c.name);
      assert.equal(l.claimKey, c.expected.claim_key, c.name);
    }
  }
});

test('qtum vectors: addresses, hash160, WIF, refusals', () => {
  const v = JSON.parse(read('sdk/tests/vectors/qtum.json'));
  for (const a of v.addresses) {
    assert.equal(p.formatAddress(a.chain_id, a.hex), a.base58);
    assert.equal(p.parseAddress(a.chain_id, a.base58), a.hex);
  }
  for (const w of v.wifs) {
    const secret = p.hexToBytes(p.strip0x(w.secret));
    if (w.compressed && w.network_kind === 'Test') {
      assert.equal(p.toWif(8890, secret), w.wif);
      assert.equal(hex(p.qtumHash160(secret)), w.qtum_sender);
      assert.equal(p.formatAddress(8890, p.qtumHash160(secret)), w.qtum_address_regtest);
    }
    if (w.evm_address) assert.equal(p.evmAddress(secret), w.evm_address);
  }
  for (const e of v.errors) {
    assert.throws(() => p.parseAddress(e.chain_id, e.input), (err) => err.kind === e.error, `${e.input} → ${e.error}`);
  }
});

test('wallet: Qtum Electrum BIP39 path, a known phrase gives a fixed key', () => {
  assert.equal(p.derivationPath(81), "m/44'/88'/0'/0/0");
  assert.equal(p.derivationPath(8890), "m/44'/1'/0'/0/0");
  const phrase = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about';
  const k = p.keyFromPhrase(81, ' ' + phrase.toUpperCase() + ' ');
  assert.equal(k.phrase, phrase);
  const again = p.keyFromPhrase(81, phrase);
  assert.deepEqual(k.secret, again.secret);
  assert.notDeepEqual(p.keyFromPhrase(8890, phrase).secret, k.secret);
  const w = p.newWallet(8890);
  assert.equal(w.phrase.split(' ').length, 12);
  assert.deepEqual(p.keyFromPhrase(8890, w.phrase).secret, w.secret);
  assert.throws(() => p.keyFromPhrase(81, 'abandon '.repeat(12)));
});

test('markup vectors: the page renders canonical CLAIM blocks byte for byte', () => {
  const v = JSON.parse(read('sdk/tests/vectors/markup.json'));
  const canon = v.cases.filter((c) => c.canonical);
  assert.ok(canon.length > 0);
  for (const c of canon) {
    const e = c.expected;
    const body = {
      chainId: e.chain_id, escrow: e.escrow, claimKey: e.claim_key, to: e.to,
      maxFee: e.max_fee.units, deadline: e.deadline, signature: e.signature,
    };
    const asset = { symbol: e.max_fee.symbol, decimals: e.max_fee.decimals };
    assert.equal(p.renderClaimBlock(body, p.hexToBytes(p.strip0x(e.salt)), asset), c.input, c.name);
  }
  assert.equal(p.formatUnits('150000000', 8), '1.5');
  assert.equal(p.formatUnits('100000', 8), '0.001');
  assert.equal(p.formatUnits('7', 0), '7');
});
