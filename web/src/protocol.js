// Spring Mail protocol code of the claim page: the same bytes as the Rust SDK
// (sdk/src/link.rs, deposit.rs, eip712.rs, qtum.rs). docs/PROTOCOL.md and
// docs/PROTOCOL-TEXT.md are the record; web/test/vectors.test.js runs their vectors
// against this file under Node. No DOM and no network here.

import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { ripemd160 } from '@noble/hashes/legacy.js';
import { bytesToHex, hexToBytes, concatBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { base64urlnopad, base58check } from '@scure/base';
import { HDKey } from '@scure/bip32';
import * as bip39 from '@scure/bip39';
import { wordlist as english } from '@scure/bip39/wordlists/english.js';

export { bytesToHex, hexToBytes };

const b58c = base58check(sha256);
const N = secp256k1.Point.CURVE().n;

// ---------------------------------------------------------------- claim link

export const LINK_PREFIX = 'sm1.';
export const PAYLOAD_LEN = 76;

/** Why a link was refused: `kind` is the SDK's LinkError variant name. */
export class LinkError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

const B64URL = /^[A-Za-z0-9_-]*$/;

/**
 * Parses the bare or URL form of a claim link, as ClaimLink::parse does.
 * Returns { chainId (number), escrow (0x… lowercase), secret (Uint8Array 32),
 * salt (Uint8Array 16), claimKey (0x… checksummed) }.
 */
export function parseLink(input) {
  if (input.length > 4096) throw new LinkError('TooLong', 'the claim link is too long');
  let text = input.trim();
  if (text.startsWith('<') && text.endsWith('>')) text = text.slice(1, -1).trim();
  if (!text) throw new LinkError('Empty', 'the claim link is empty');
  let token;
  if (text.startsWith('sm') && !text.includes('://')) token = text;
  else if (text.includes('://')) {
    const i = text.indexOf('#');
    if (i < 0) throw new LinkError('MissingFragment', 'the link has no #fragment (was it cut off?)');
    token = text.slice(i + 1);
  } else if (text.includes('#')) token = text.slice(text.indexOf('#') + 1);
  else throw new LinkError('MissingPrefix', 'not a claim link');
  if (!token.startsWith(LINK_PREFIX)) {
    const m = /^sm(\d{1,8})\./.exec(token);
    if (m) throw new LinkError('UnknownVersion', `claim link version sm${m[1]}. is not supported`);
    throw new LinkError('MissingPrefix', 'not a claim link');
  }
  const enc = token.slice(LINK_PREFIX.length);
  if (!B64URL.test(enc)) {
    const position = [...enc].findIndex((c) => !/[A-Za-z0-9_-]/.test(c));
    const e = new LinkError('InvalidBase64', `invalid character at position ${position}`);
    e.position = position;
    throw e;
  }
  if (enc.length % 4 === 1) throw new LinkError('InvalidBase64Length', 'the link was cut off');
  const got = Math.floor((enc.length * 3) / 4);
  if (got !== PAYLOAD_LEN) {
    const e = new LinkError('PayloadLength', `the link holds ${got} bytes, not 76 (was it cut off?)`);
    e.got = got;
    throw e;
  }
  let payload;
  try {
    payload = base64urlnopad.decode(enc);
  } catch {
    const e = new LinkError('InvalidBase64', 'the last character of the link is not canonical');
    e.position = enc.length - 1;
    throw e;
  }
  // @scure/base accepts stray low bits in the last character; the SDK does not.
  if (base64urlnopad.encode(payload) !== enc) {
    const e = new LinkError('InvalidBase64', 'the last character of the link is not canonical');
    e.position = enc.length - 1;
    throw e;
  }
  return fromPayload(payload);
}

function fromPayload(payload) {
  let chain = 0n;
  for (const b of payload.slice(0, 8)) chain = (chain << 8n) | BigInt(b);
  if (chain === 0n) throw new LinkError('ZeroChainId', "the link's chain id is 0");
  const secret = payload.slice(28, 60);
  const k = BigInt('0x' + bytesToHex(secret));
  if (k === 0n || k >= N) throw new LinkError('InvalidSecret', "the link's claim key is not a valid key");
  return {
    chainId: Number(chain),
    escrow: '0x' + bytesToHex(payload.slice(8, 28)),
    secret,
    salt: payload.slice(60, 76),
    claimKey: evmAddress(secret),
  };
}

/** `sm1.<base64url>` of a link object (tests). */
export function linkToBare(link) {
  const p = new Uint8Array(PAYLOAD_LEN);
  let c = BigInt(link.chainId);
  for (let i = 7; i >= 0; i--) {
    p[i] = Number(c & 0xffn);
    c >>= 8n;
  }
  p.set(hexToBytes(strip0x(link.escrow)), 8);
  p.set(link.secret, 28);
  p.set(link.salt, 60);
  return LINK_PREFIX + base64urlnopad.encode(p);
}

// ---------------------------------------------------------------- addresses

export function strip0x(h) {
  return h.startsWith('0x') || h.startsWith('0X') ? h.slice(2) : h;
}

/** EIP-55 checksum spelling of 20 bytes or a hex address. */
export function checksum(addr) {
  const hex = (typeof addr === 'string' ? strip0x(addr) : bytesToHex(addr)).toLowerCase();
  const h = bytesToHex(keccak_256(utf8ToBytes(hex)));
  let out = '0x';
  for (let i = 0; i < 40; i++) out += parseInt(h[i], 16) >= 8 ? hex[i].toUpperCase() : hex[i];
  return out;
}

/** The EVM (keccak) address of a secret: what ecrecover returns. */
export function evmAddress(secret) {
  const pub = secp256k1.getPublicKey(secret, false);
  return checksum(keccak_256(pub.slice(1)).slice(12));
}

/** hash160 of the compressed public key: the key's Qtum address bytes. */
export function qtumHash160(secret) {
  return ripemd160(sha256(secp256k1.getPublicKey(secret, true)));
}

export const QTUM = {
  81: { name: 'mainnet', version: 58, wif: 0x80, coin: 88 },
  8889: { name: 'testnet', version: 120, wif: 0xef, coin: 1 },
  8890: { name: 'regtest', version: 120, wif: 0xef, coin: 1 },
};

export function isQtum(chainId) {
  return Object.prototype.hasOwnProperty.call(QTUM, chainId);
}

/** format_address: base58 on Qtum chains, EIP-55 hex elsewhere. */
export function formatAddress(chainId, addr) {
  const bytes = typeof addr === 'string' ? hexToBytes(strip0x(addr)) : addr;
  if (!isQtum(chainId)) return checksum(bytes);
  return b58c.encode(concatBytes(Uint8Array.of(QTUM[chainId].version), bytes));
}

/** Why an address was refused: `kind` is the SDK's AddressError variant name. */
export class AddressError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

/** parse_address(chain_id, text): 0x hex everywhere, base58 of the chain's network on Qtum. Returns 0x… lowercase. */
export function parseAddress(chainId, input) {
  const text = input.trim();
  if (!text) throw new AddressError('Empty', 'the address is empty');
  if (text.startsWith('0x') || text.startsWith('0X')) {
    const hex = text.slice(2);
    if (!/^[0-9a-fA-F]{40}$/.test(hex)) {
      throw new AddressError('InvalidHex', 'a hex address is 0x followed by 40 hex digits');
    }
    const lower = hex === hex.toLowerCase();
    const upper = hex === hex.toUpperCase();
    if (!lower && !upper && checksum(hex) !== '0x' + hex) {
      throw new AddressError('BadHexChecksum', 'the address has a wrong checksum (mixed case): check it for typos');
    }
    return '0x' + hex.toLowerCase();
  }
  if (!isQtum(chainId)) {
    throw new AddressError('HexRequired', `chain ${chainId} is not a Qtum chain: give the address as 0x followed by 40 hex digits`);
  }
  if (text.length > 128) throw new AddressError('TooLong', 'the address is too long');
  const bech = /^(qc1|tq1|qcrt1)/i.test(text);
  const bad = [...text].findIndex((c) => !B58.includes(c));
  if (bad >= 0) {
    if (bech) throw new AddressError('Bech32NotSupported', 'segwit (bech32) addresses cannot receive from the escrow; use a Q… or q… address');
    throw new AddressError('InvalidBase58Character', `the character ${JSON.stringify(text[bad])} at position ${bad} is not base58: check for typos`);
  }
  let raw;
  try {
    raw = b58c.decode(text);
  } catch {
    if (bech) throw new AddressError('Bech32NotSupported', 'segwit (bech32) addresses cannot receive from the escrow');
    throw new AddressError('BadChecksum', 'the address has a wrong checksum: check it for typos');
  }
  if (raw.length !== 21) throw new AddressError('WrongLength', `not an address: it holds ${raw.length} bytes, not 21 (is it a private key?)`);
  const version = raw[0];
  if (version !== 58 && version !== 120) throw new AddressError('UnknownVersion', `address version ${version} is not a Qtum P2PKH address`);
  if (version !== QTUM[chainId].version) {
    throw new AddressError('WrongNetwork', `this is a ${version === 58 ? 'mainnet' : 'testnet'} address, but the deposit is on Qtum ${QTUM[chainId].name}`);
  }
  return '0x' + bytesToHex(raw.slice(1));
}

/** WIF of a secret (compressed). */
export function toWif(chainId, secret) {
  const version = isQtum(chainId) ? QTUM[chainId].wif : 0xef;
  return b58c.encode(concatBytes(Uint8Array.of(version), secret, Uint8Array.of(1)));
}

// ---------------------------------------------------------------- wallet

/**
 * The derivation Qtum Electrum uses for a BIP39 phrase restored as a standard
 * (legacy p2pkh) wallet: bip44_derivation(0) = m/44'/<BIP44_COIN_TYPE>'/0', coin type
 * 88 on mainnet and 1 on testnet/regtest (electrum/keystore.py, electrum/constants.py),
 * first receiving address /0/0.
 */
export function derivationPath(chainId) {
  const coin = isQtum(chainId) ? QTUM[chainId].coin : 1;
  return `m/44'/${coin}'/0'/0/0`;
}

/** The receiving key of a phrase: { secret, path }. */
export function keyFromPhrase(chainId, phrase) {
  const words = phrase.trim().toLowerCase().split(/\s+/).join(' ');
  if (!bip39.validateMnemonic(words, english)) throw new Error('not a valid 12-word BIP39 phrase');
  const path = derivationPath(chainId);
  const node = HDKey.fromMasterSeed(bip39.mnemonicToSeedSync(words)).derive(path);
  return { secret: node.privateKey, path, phrase: words };
}

/** A new wallet: 12 words (128 bits from the browser's CSPRNG). */
export function newWallet(chainId) {
  return keyFromPhrase(chainId, bip39.generateMnemonic(english, 128));
}

/** Where a wallet key's coins are paid: hash160 on Qtum, the EVM address elsewhere. */
export function payoutAddress(chainId, secret) {
  return isQtum(chainId) ? '0x' + bytesToHex(qtumHash160(secret)) : evmAddress(secret).toLowerCase();
}

// ---------------------------------------------------------------- deposit and EIP-712

function word(n) {
  const out = new Uint8Array(32);
  let v = BigInt(n);
  for (let i = 31; i >= 0 && v > 0n; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function addrWord(a) {
  const out = new Uint8Array(32);
  out.set(hexToBytes(strip0x(a)), 12);
  return out;
}

/** abi.encode(Deposit): 224 bytes. Amounts are decimal strings or bigints (base units). */
export function encodeDeposit(d) {
  return concatBytes(
    addrWord(d.sender),
    addrWord(d.token),
    word(BigInt(d.amount)),
    word(BigInt(d.expiry)),
    word(BigInt(d.flags)),
    addrWord(d.watcher),
    hexToBytes(strip0x(d.recipient)),
  );
}

export function depositHash(d) {
  return keccak_256(encodeDeposit(d));
}

const DOMAIN_TYPE = 'EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)';
export const CLAIM_TYPE = 'Claim(address claimKey,bytes32 deposit,address to,uint96 maxFee,uint40 deadline)';
export const ATTEST_TYPE = 'Attest(address claimKey,bytes32 deposit,address to,uint40 deadline)';

export function domainSeparator(chainId, escrow) {
  return keccak_256(
    concatBytes(
      keccak_256(utf8ToBytes(DOMAIN_TYPE)),
      keccak_256(utf8ToBytes('SpringMail')),
      keccak_256(utf8ToBytes('1')),
      word(BigInt(chainId)),
      addrWord(escrow),
    ),
  );
}

const MASK96 = (1n << 96n) - 1n;
const MASK40 = (1n << 40n) - 1n;

/** The Claim digest: { claimKey, depositHash (bytes), to, maxFee, deadline }. */
export function claimDigest(chainId, escrow, c) {
  const struct = keccak_256(
    concatBytes(
      keccak_256(utf8ToBytes(CLAIM_TYPE)),
      addrWord(c.claimKey),
      c.depositHash,
      addrWord(c.to),
      word(BigInt(c.maxFee) & MASK96),
      word(BigInt(c.deadline) & MASK40),
    ),
  );
  return keccak_256(concatBytes(Uint8Array.of(0x19, 0x01), domainSeparator(chainId, escrow), struct));
}

export function attestDigest(chainId, escrow, c) {
  const struct = keccak_256(
    concatBytes(
      keccak_256(utf8ToBytes(ATTEST_TYPE)),
      addrWord(c.claimKey),
      c.depositHash,
      addrWord(c.to),
      word(BigInt(c.deadline) & MASK40),
    ),
  );
  return keccak_256(concatBytes(Uint8Array.of(0x19, 0x01), domainSeparator(chainId, escrow), struct));
}

/** 65 bytes r ‖ s ‖ v, v ∈ {27, 28}, low s, RFC 6979 (as libsecp256k1). */
export function signDigest(secret, digest) {
  const rec = secp256k1.sign(digest, secret, { prehash: false, format: 'recovered', lowS: true });
  return concatBytes(rec.slice(1, 65), Uint8Array.of(27 + rec[0]));
}

/** Signs the Claim for `link` paying `deposit` to `to`; returns the request body of POST /api/claims. */
export function signClaim(link, deposit, to, maxFee, deadline) {
  const dh = depositHash(deposit);
  const auth = { claimKey: link.claimKey, depositHash: dh, to, maxFee, deadline };
  const sig = signDigest(link.secret, claimDigest(link.chainId, link.escrow, auth));
  return {
    chainId: link.chainId,
    escrow: checksum(link.escrow),
    claimKey: link.claimKey,
    depositHash: '0x' + bytesToHex(dh),
    to: checksum(to),
    maxFee: String(maxFee),
    deadline: Number(deadline),
    signature: '0x' + bytesToHex(sig),
  };
}

// ---------------------------------------------------------------- amounts and mail

/** format_units: base units as a canonical decimal, `150000000, 8` → `1.5`. */
export function formatUnits(units, decimals) {
  const digits = BigInt(units).toString();
  if (!decimals) return digits;
  const padded = digits.length <= decimals ? '0'.repeat(decimals + 1 - digits.length) + digits : digits;
  const int = padded.slice(0, padded.length - decimals);
  const frac = padded.slice(padded.length - decimals).replace(/0+$/, '');
  return frac ? `${int}.${frac}` : int;
}

/** ClaimBlock::render of a signed claim (the body signClaim returns) with the link's salt. */
export function renderClaimBlock(body, salt, asset) {
  return [
    '-----BEGIN BISMTP CLAIM-----',
    'Version: 1',
    `Chain: ${body.chainId}`,
    `Escrow: ${checksum(body.escrow)}`,
    `Claim-Key: ${checksum(body.claimKey)}`,
    `To: ${formatAddress(body.chainId, body.to)}`,
    `Max-Fee: ${formatUnits(body.maxFee, asset.decimals)} ${asset.symbol}`,
    `Deadline: ${body.deadline}`,
    `Salt: 0x${bytesToHex(salt)}`,
    `Signature: ${body.signature.toLowerCase()}`,
    '-----END BISMTP CLAIM-----',
    '',
  ].join('\n');
}
