//! Qtum contract transactions built and signed in Rust, for a qtumd without a wallet.
//!
//! A Qtum contract call is an ordinary UTXO transaction with one special output:
//!
//! ```text
//! vin[0..]  P2PKH inputs of the sender           scriptSig: <sig+01> <pubkey33>
//! vout[0]   value = msg.value (satoshi)          1 <hash160> <senderSig> OP_SENDER
//!                                                4 <gasLimit> <gasPrice> <data> <contract> OP_CALL
//!                                                (a create: ... 4 <gasLimit> <gasPrice> <code> OP_CREATE)
//! vout[1]   change to the sender's P2PKH script (left out when it would be dust)
//! fee       inputs − outputs = gasLimit × gasPrice + size × relay fee (0.004 QTUM/kvB)
//! ```
//!
//! Numbers in the contract output (address type 1, VM version 4, gas limit, gas price) are
//! pushed as `CScriptNum` byte strings, never as `OP_n`. `<senderSig>` is a push of a
//! *serialized script*: its compact-size length, then `<sig+01> <pubkey33>`.
//!
//! Two signatures, in this order:
//!
//! 1. **OP_SENDER** ([`sender_sighash`]): BIP143-shaped, with the contract output in place of
//!    the input being spent: `sha256d(version ‖ hashPrevouts ‖ hashSequence ‖ output ‖
//!    scriptCode ‖ output value ‖ hashOutputs ‖ locktime ‖ sighash type)`, where every
//!    OP_SENDER output is hashed with its sender signature replaced by an empty push, and
//!    the script code is the sender's P2PKH script. qtumd checks it against `hash160`, and the
//!    contract sees that `hash160` as `msg.sender`; gas refunds and the value of a reverted call
//!    go back to it.
//! 2. **Inputs** ([`input_sighash`]): Bitcoin's legacy SIGHASH_ALL over the whole transaction,
//!    *with* the sender signature in place, so they are made last.
//!
//! Signatures are RFC 6979 with Bitcoin Core's low-R grinding, so a signature's length,
//! and so the fee, is known before signing. It is what the node's wallet makes: with the
//! same key imported, qtumd signs a transaction built here to the same bytes
//! (`tests/tests/qtum_local_signer.rs`).
//!
//! Nothing here talks to a node; [`super::qtum`] chooses the UTXOs and broadcasts.

use alloy::primitives::{Address, B256};

use crate::keys::ClaimSecret;
use crate::qtum::{hash160_of_pubkey, sha256d};

/// Pushes an empty byte string.
pub const OP_0: u8 = 0x00;
/// Next byte is the push length.
pub const OP_PUSHDATA1: u8 = 0x4c;
/// Next two bytes (little-endian) are the push length.
pub const OP_PUSHDATA2: u8 = 0x4d;
/// Next four bytes (little-endian) are the push length.
pub const OP_PUSHDATA4: u8 = 0x4e;
/// P2PKH opcodes.
pub const OP_DUP: u8 = 0x76;
/// P2PKH opcodes.
pub const OP_HASH160: u8 = 0xa9;
/// P2PKH opcodes.
pub const OP_EQUALVERIFY: u8 = 0x88;
/// P2PKH opcodes.
pub const OP_CHECKSIG: u8 = 0xac;
/// Qtum: create a contract from the pushed code.
pub const OP_CREATE: u8 = 0xc1;
/// Qtum: call a contract.
pub const OP_CALL: u8 = 0xc2;
/// Qtum: the pushed P2PKH identity is `msg.sender`.
pub const OP_SENDER: u8 = 0xc4;
/// `SIGHASH_ALL`, the only type this module makes.
pub const SIGHASH_ALL: u32 = 1;
/// Sender address type of a P2PKH sender (`addresstype::PUBKEYHASH`).
pub const SENDER_TYPE_P2PKH: u64 = 1;
/// The EVM's `VersionVM` as a number (rootVM 1, everything else 0): pushed as `04`.
pub const EVM_VERSION: u64 = 4;
/// Transaction version qtumd's wallet writes.
pub const TX_VERSION: i32 = 2;
/// Input sequence qtumd's wallet writes (final, opts in to replacement).
pub const TX_SEQUENCE: u32 = 0xffff_fffd;
/// qtumd's default relay fee and `DUST_RELAY_TX_FEE`: 0.004 QTUM per 1000 bytes.
pub const RELAY_FEE_PER_KVB: u64 = 400_000;
/// The smallest gas limit qtumd's mempool accepts (`MEMPOOL_MIN_GAS_LIMIT`).
pub const MIN_GAS_LIMIT: u64 = 22_000;
/// A P2PKH output (34 bytes) plus the input that spends it (148), at the dust fee rate:
/// change below this is left to the fee, as Bitcoin Core's dust rule would refuse it.
pub const P2PKH_DUST: u64 = (34 + 148) * RELAY_FEE_PER_KVB / 1000;
/// Largest P2PKH input: outpoint 36, script length 1, `<sig71> <pubkey33>` 106, sequence 4.
/// A low-R DER signature is at most 70 bytes, plus the sighash byte.
pub const P2PKH_INPUT_MAX_SIZE: usize = 36 + 1 + 106 + 4;
/// Largest sender signature push: PUSHDATA1, length, then a 107-byte serialized script.
const SENDER_SIG_PUSH_MAX: usize = 2 + 107;

/// A transaction output being spent. `txid` is written the way RPCs show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutPoint {
    /// The transaction id, RPC (display) byte order.
    pub txid: B256,
    /// The output index.
    pub vout: u32,
}

/// A transaction input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxIn {
    /// What it spends.
    pub prevout: OutPoint,
    /// The unlocking script (empty until signed).
    pub script_sig: Vec<u8>,
    /// nSequence.
    pub sequence: u32,
}

/// A transaction output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOut {
    /// Satoshi.
    pub value: u64,
    /// The locking script.
    pub script: Vec<u8>,
}

/// A non-witness transaction, the only kind this module builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// nVersion.
    pub version: i32,
    /// Inputs.
    pub inputs: Vec<TxIn>,
    /// Outputs.
    pub outputs: Vec<TxOut>,
    /// nLockTime.
    pub lock_time: u32,
}

/// Why raw bytes are not a transaction, or a script not a contract output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The bytes ended early.
    #[error("transaction bytes end at offset {at}, inside {what}")]
    Truncated { what: &'static str, at: usize },
    /// Bytes were left after the lock time.
    #[error("{extra} bytes follow the transaction")]
    TrailingBytes { extra: usize },
    /// A witness (segwit) transaction; only legacy ones are read.
    #[error("a segwit transaction (marker 0, flag {flag}); only legacy transactions are read")]
    Segwit { flag: u8 },
    /// A push runs past the end of its script.
    #[error("a script push at byte {at} runs past the end of the script")]
    BadPush { at: usize },
    /// The output asked for is not an OP_SENDER output.
    #[error("output {index} has no OP_SENDER with a sender before it")]
    NotSenderOutput { index: usize },
    /// An index past the end.
    #[error("{what} {index} does not exist (the transaction has {len})")]
    NoSuchIndex {
        what: &'static str,
        index: usize,
        len: usize,
    },
}

/// Why a transaction could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The spendable coins do not cover value, gas and fee.
    #[error(
        "insufficient funds: {needed} satoshi needed (value, gas limit × price and fee), \
         {available} satoshi spendable in {utxos} mature outputs of the sender"
    )]
    InsufficientFunds {
        needed: u64,
        available: u64,
        utxos: usize,
    },
    /// The gas limit is under what the mempool takes, or over 32 bits.
    #[error("gas limit {got} is outside {min}..=4294967295, the range qtumd accepts")]
    GasLimit { got: u64, min: u64 },
    /// The gas price is zero.
    #[error("gas price must be at least 1 satoshi per gas")]
    GasPrice,
    /// An amount overflows 64 bits.
    #[error("{what} overflows a 64-bit satoshi amount")]
    Overflow { what: &'static str },
}

impl Transaction {
    /// The consensus serialization (hex of it is what `sendrawtransaction` takes).
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&self.version.to_le_bytes());
        write_compact(&mut out, self.inputs.len() as u64);
        for i in &self.inputs {
            write_outpoint(&mut out, &i.prevout);
            write_bytes(&mut out, &i.script_sig);
            out.extend_from_slice(&i.sequence.to_le_bytes());
        }
        write_compact(&mut out, self.outputs.len() as u64);
        for o in &self.outputs {
            write_txout(&mut out, o.value, &o.script);
        }
        out.extend_from_slice(&self.lock_time.to_le_bytes());
        out
    }

    /// The transaction id in RPC byte order.
    pub fn txid(&self) -> B256 {
        let mut h = sha256d(&self.serialize());
        h.reverse();
        B256::from(h)
    }

    /// Reads a legacy (non-witness) transaction.
    pub fn parse(bytes: &[u8]) -> Result<Self, TxError> {
        let mut r = Reader { b: bytes, at: 0 };
        let version = i32::from_le_bytes(r.array::<4>("version")?);
        let n_in = r.compact("input count")?;
        if n_in == 0 {
            let flag = r.array::<1>("segwit flag")?[0];
            return Err(TxError::Segwit { flag });
        }
        let mut inputs = Vec::new();
        for _ in 0..n_in {
            let mut txid = r.array::<32>("prevout")?;
            txid.reverse();
            let vout = u32::from_le_bytes(r.array::<4>("prevout")?);
            let len = r.compact("scriptSig length")?;
            let script_sig = r.take(len, "scriptSig")?.to_vec();
            let sequence = u32::from_le_bytes(r.array::<4>("sequence")?);
            inputs.push(TxIn {
                prevout: OutPoint {
                    txid: B256::from(txid),
                    vout,
                },
                script_sig,
                sequence,
            });
        }
        let n_out = r.compact("output count")?;
        let mut outputs = Vec::new();
        for _ in 0..n_out {
            let value = u64::from_le_bytes(r.array::<8>("value")?);
            let len = r.compact("script length")?;
            let script = r.take(len, "script")?.to_vec();
            outputs.push(TxOut { value, script });
        }
        let lock_time = u32::from_le_bytes(r.array::<4>("lock time")?);
        if r.at != bytes.len() {
            return Err(TxError::TrailingBytes {
                extra: bytes.len() - r.at,
            });
        }
        Ok(Transaction {
            version,
            inputs,
            outputs,
            lock_time,
        })
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], TxError> {
        let n = usize::try_from(n).map_err(|_| TxError::Truncated { what, at: self.at })?;
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or(TxError::Truncated { what, at: self.at })?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], TxError> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn compact(&mut self, what: &'static str) -> Result<u64, TxError> {
        let first = self.array::<1>(what)?[0];
        Ok(match first {
            0xfd => u64::from(u16::from_le_bytes(self.array::<2>(what)?)),
            0xfe => u64::from(u32::from_le_bytes(self.array::<4>(what)?)),
            0xff => u64::from_le_bytes(self.array::<8>(what)?),
            n => u64::from(n),
        })
    }
}

/// Bitcoin's compact size (varint) length prefix.
pub fn write_compact(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

fn compact_len(n: usize) -> usize {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        _ => 5,
    }
}

fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_compact(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn write_outpoint(out: &mut Vec<u8>, p: &OutPoint) {
    let mut txid = p.txid.0;
    txid.reverse();
    out.extend_from_slice(&txid);
    out.extend_from_slice(&p.vout.to_le_bytes());
}

fn write_txout(out: &mut Vec<u8>, value: u64, script: &[u8]) {
    out.extend_from_slice(&value.to_le_bytes());
    write_bytes(out, script);
}

/// Appends a push of `data` the way `CScript << vector` writes it: `OP_0` for nothing, a
/// length byte below 76, then PUSHDATA1/2/4.
pub fn push_data(script: &mut Vec<u8>, data: &[u8]) {
    let n = data.len();
    if n < OP_PUSHDATA1 as usize {
        script.push(n as u8);
    } else if n <= 0xff {
        script.push(OP_PUSHDATA1);
        script.push(n as u8);
    } else if n <= 0xffff {
        script.push(OP_PUSHDATA2);
        script.extend_from_slice(&(n as u16).to_le_bytes());
    } else {
        script.push(OP_PUSHDATA4);
        script.extend_from_slice(&(n as u32).to_le_bytes());
    }
    script.extend_from_slice(data);
}

/// `CScriptNum` bytes of a non-negative number: little-endian, minimal, with a 0 byte
/// added when the top bit is set (it would be the sign). Zero is the empty string.
pub fn script_num(n: u64) -> Vec<u8> {
    let mut v = Vec::new();
    let mut x = n;
    while x > 0 {
        v.push((x & 0xff) as u8);
        x >>= 8;
    }
    if v.last().is_some_and(|b| b & 0x80 != 0) {
        v.push(0);
    }
    v
}

/// The P2PKH locking script of a hash160: `OP_DUP OP_HASH160 <20> OP_EQUALVERIFY OP_CHECKSIG`.
pub fn p2pkh_script(hash160: Address) -> Vec<u8> {
    let mut s = Vec::with_capacity(25);
    s.extend_from_slice(&[OP_DUP, OP_HASH160, 20]);
    s.extend_from_slice(hash160.as_slice());
    s.extend_from_slice(&[OP_EQUALVERIFY, OP_CHECKSIG]);
    s
}

/// What a contract output does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractOp<'a> {
    /// `OP_CREATE` with init code.
    Create { code: &'a [u8] },
    /// `OP_CALL` of `contract` with calldata.
    Call { contract: Address, data: &'a [u8] },
}

/// The contract output's script with `OP_SENDER` for the P2PKH `sender`. `sender_sig` is
/// the pushed sender signature blob (empty before signing: an `OP_0`).
pub fn contract_script(
    sender: Address,
    sender_sig: &[u8],
    gas_limit: u64,
    gas_price: u64,
    op: &ContractOp<'_>,
) -> Vec<u8> {
    let mut s = Vec::new();
    push_data(&mut s, &script_num(SENDER_TYPE_P2PKH));
    push_data(&mut s, sender.as_slice());
    push_data(&mut s, sender_sig);
    s.push(OP_SENDER);
    push_data(&mut s, &script_num(EVM_VERSION));
    push_data(&mut s, &script_num(gas_limit));
    push_data(&mut s, &script_num(gas_price));
    match op {
        ContractOp::Create { code } => {
            push_data(&mut s, code);
            s.push(OP_CREATE);
        }
        ContractOp::Call { contract, data } => {
            push_data(&mut s, data);
            push_data(&mut s, contract.as_slice());
            s.push(OP_CALL);
        }
    }
    s
}

/// Byte ranges of the operations of a script (a push with its data is one operation).
fn script_ops(script: &[u8]) -> Result<Vec<std::ops::Range<usize>>, TxError> {
    let mut ops = Vec::new();
    let mut at = 0;
    while at < script.len() {
        let op = script[at];
        let (header, len) = match op {
            0x01..=0x4b => (1, usize::from(op)),
            OP_PUSHDATA1 => (
                2,
                usize::from(*script.get(at + 1).ok_or(TxError::BadPush { at })?),
            ),
            OP_PUSHDATA2 => {
                let b = script.get(at + 1..at + 3).ok_or(TxError::BadPush { at })?;
                (3, usize::from(u16::from_le_bytes([b[0], b[1]])))
            }
            OP_PUSHDATA4 => {
                let b = script.get(at + 1..at + 5).ok_or(TxError::BadPush { at })?;
                (5, u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            }
            _ => (1, 0),
        };
        let end = at
            .checked_add(header)
            .and_then(|x| x.checked_add(len))
            .filter(|e| *e <= script.len())
            .ok_or(TxError::BadPush { at })?;
        ops.push(at..end);
        at = end;
    }
    Ok(ops)
}

/// The script with its sender signature replaced by an empty push, as qtumd hashes an
/// OP_SENDER output for the sender signature (`CScript::WithoutSenderSig`). `None` when the
/// script has no OP_SENDER with two operations before it.
pub fn without_sender_sig(script: &[u8]) -> Result<Option<Vec<u8>>, TxError> {
    let ops = script_ops(script)?;
    let Some(k) = ops
        .iter()
        .position(|r| r.len() == 1 && script[r.start] == OP_SENDER)
    else {
        return Ok(None);
    };
    if k < 2 {
        return Ok(None);
    }
    let sig = &ops[k - 1];
    let mut out = Vec::with_capacity(script.len());
    out.extend_from_slice(&script[..sig.start]);
    out.push(OP_0);
    out.extend_from_slice(&script[sig.end..]);
    Ok(Some(out))
}

/// Whether a script carries OP_SENDER as an operation (`CScript::HasOpSender`).
pub fn has_op_sender(script: &[u8]) -> bool {
    script_ops(script).is_ok_and(|ops| {
        ops.iter()
            .filter(|r| r.len() == 1 && script[r.start] == OP_SENDER)
            .count()
            == 1
    })
}

/// The digest the sender signs for OP_SENDER output `n_out` (SIGHASH_ALL), with the
/// sender's P2PKH script as script code and the output's value as amount.
pub fn sender_sighash(tx: &Transaction, n_out: usize, sender: Address) -> Result<B256, TxError> {
    let out = tx.outputs.get(n_out).ok_or(TxError::NoSuchIndex {
        what: "output",
        index: n_out,
        len: tx.outputs.len(),
    })?;
    let target =
        without_sender_sig(&out.script)?.ok_or(TxError::NotSenderOutput { index: n_out })?;

    let mut prevouts = Vec::new();
    let mut sequences = Vec::new();
    for i in &tx.inputs {
        write_outpoint(&mut prevouts, &i.prevout);
        sequences.extend_from_slice(&i.sequence.to_le_bytes());
    }
    let mut outputs = Vec::new();
    for o in &tx.outputs {
        let script = if has_op_sender(&o.script) {
            without_sender_sig(&o.script)?.unwrap_or_else(|| o.script.clone())
        } else {
            o.script.clone()
        };
        write_txout(&mut outputs, o.value, &script);
    }

    let mut pre = Vec::with_capacity(256 + target.len());
    pre.extend_from_slice(&tx.version.to_le_bytes());
    pre.extend_from_slice(&sha256d(&prevouts));
    pre.extend_from_slice(&sha256d(&sequences));
    write_txout(&mut pre, out.value, &target);
    write_bytes(&mut pre, &p2pkh_script(sender));
    pre.extend_from_slice(&out.value.to_le_bytes());
    pre.extend_from_slice(&sha256d(&outputs));
    pre.extend_from_slice(&tx.lock_time.to_le_bytes());
    pre.extend_from_slice(&SIGHASH_ALL.to_le_bytes());
    Ok(B256::from(sha256d(&pre)))
}

/// The legacy SIGHASH_ALL digest for input `n_in` spending an output locked by
/// `script_code` (a P2PKH script): the transaction with every other scriptSig emptied.
pub fn input_sighash(tx: &Transaction, n_in: usize, script_code: &[u8]) -> Result<B256, TxError> {
    if n_in >= tx.inputs.len() {
        return Err(TxError::NoSuchIndex {
            what: "input",
            index: n_in,
            len: tx.inputs.len(),
        });
    }
    let mut copy = tx.clone();
    for (i, input) in copy.inputs.iter_mut().enumerate() {
        input.script_sig = if i == n_in {
            script_code.to_vec()
        } else {
            Vec::new()
        };
    }
    let mut pre = copy.serialize();
    pre.extend_from_slice(&SIGHASH_ALL.to_le_bytes());
    Ok(B256::from(sha256d(&pre)))
}

/// A key that signs Qtum transactions. `Debug` shows only the address hash.
#[derive(Clone)]
pub struct TxSigner {
    secret: ClaimSecret,
    pubkey: [u8; 33],
    hash160: Address,
}

impl std::fmt::Debug for TxSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxSigner")
            .field("hash160", &self.hash160)
            .finish_non_exhaustive()
    }
}

impl TxSigner {
    /// The signer of a secret key, with its compressed public key.
    pub fn new(secret: ClaimSecret) -> Self {
        let sk = secp256k1::SecretKey::from_byte_array(*secret.expose_bytes())
            .expect("ClaimSecret is validated at construction");
        let pubkey = secp256k1::PublicKey::from_secret_key_global(&sk).serialize();
        let hash160 = hash160_of_pubkey(&pubkey);
        TxSigner {
            secret,
            pubkey,
            hash160,
        }
    }

    /// `hash160(compressed pubkey)`: the P2PKH address and `msg.sender`.
    pub fn hash160(&self) -> Address {
        self.hash160
    }

    /// The compressed public key.
    pub fn pubkey(&self) -> &[u8; 33] {
        &self.pubkey
    }

    /// A low-R, low-S DER signature of `digest` followed by the SIGHASH_ALL byte.
    pub fn sign(&self, digest: &B256) -> Vec<u8> {
        let sk = secp256k1::SecretKey::from_byte_array(*self.secret.expose_bytes())
            .expect("ClaimSecret is validated at construction");
        let msg = secp256k1::Message::from_digest(digest.0);
        let sig = secp256k1::SECP256K1.sign_ecdsa_low_r(msg, &sk);
        let mut out = sig.serialize_der().to_vec();
        out.push(SIGHASH_ALL as u8);
        out
    }

    /// `<sig+01> <pubkey>`: the P2PKH unlocking script.
    fn unlocking_script(&self, sig: &[u8]) -> Vec<u8> {
        let mut s = Vec::with_capacity(107);
        push_data(&mut s, sig);
        push_data(&mut s, &self.pubkey);
        s
    }

    /// Signs every OP_SENDER output whose sender is this key, then every input (all are
    /// taken to be this key's P2PKH outputs).
    pub fn sign_transaction(&self, tx: &mut Transaction) -> Result<(), TxError> {
        for n in 0..tx.outputs.len() {
            if !has_op_sender(&tx.outputs[n].script) {
                continue;
            }
            let digest = sender_sighash(tx, n, self.hash160)?;
            let mut blob = Vec::new();
            write_bytes(&mut blob, &self.unlocking_script(&self.sign(&digest)));
            let unsigned = without_sender_sig(&tx.outputs[n].script)?
                .ok_or(TxError::NotSenderOutput { index: n })?;
            // Put the blob where the empty push is: the operation before OP_SENDER.
            let ops = script_ops(&unsigned)?;
            let k = ops
                .iter()
                .position(|r| r.len() == 1 && unsigned[r.start] == OP_SENDER)
                .ok_or(TxError::NotSenderOutput { index: n })?;
            let slot = ops[k - 1].clone();
            let mut script = unsigned[..slot.start].to_vec();
            push_data(&mut script, &blob);
            script.extend_from_slice(&unsigned[slot.end..]);
            tx.outputs[n].script = script;
        }
        let code = p2pkh_script(self.hash160);
        let mut sigs = Vec::with_capacity(tx.inputs.len());
        for n in 0..tx.inputs.len() {
            let digest = input_sighash(tx, n, &code)?;
            sigs.push(self.unlocking_script(&self.sign(&digest)));
        }
        for (input, sig) in tx.inputs.iter_mut().zip(sigs) {
            input.script_sig = sig;
        }
        Ok(())
    }
}

/// A spendable output of the sender (a P2PKH output of its hash160).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utxo {
    /// Where it is.
    pub outpoint: OutPoint,
    /// Satoshi.
    pub value: u64,
}

/// What to build: one contract output, paid for by the sender.
#[derive(Debug, Clone, Copy)]
pub struct ContractTx<'a> {
    /// Create or call.
    pub op: ContractOp<'a>,
    /// `msg.value` in satoshi (0 for a create).
    pub value: u64,
    /// Gas limit.
    pub gas_limit: u64,
    /// Satoshi per gas.
    pub gas_price: u64,
    /// Size fee in satoshi per 1000 bytes.
    pub fee_per_kvb: u64,
}

/// A signed transaction and what it pays.
#[derive(Debug, Clone)]
pub struct Built {
    /// The signed transaction: vout 0 is the contract output, vout 1 the change if any.
    pub tx: Transaction,
    /// The fee: gas limit × price plus the size fee (plus any dust left to it).
    pub fee: u64,
    /// Change paid back to the sender (0 when none).
    pub change: u64,
}

/// The largest size the signed transaction can have.
fn max_size(n_inputs: usize, contract_unsigned_len: usize, change: bool) -> usize {
    let contract = contract_unsigned_len - 1 + SENDER_SIG_PUSH_MAX;
    let n_out = 1 + usize::from(change);
    let mut size = 4 + compact_len(n_inputs) + n_inputs * P2PKH_INPUT_MAX_SIZE + compact_len(n_out);
    size += 8 + compact_len(contract) + contract;
    if change {
        size += 8 + 1 + 25;
    }
    size + 4
}

/// Builds and signs a contract transaction, taking `utxos` in the order given until they
/// cover value, gas limit × price and the size fee. Change goes back to the sender's P2PKH
/// script unless it would be dust ([`P2PKH_DUST`]), in which case the fee keeps it.
pub fn build_contract_tx(
    signer: &TxSigner,
    utxos: &[Utxo],
    req: &ContractTx<'_>,
) -> Result<Built, BuildError> {
    if !(MIN_GAS_LIMIT..=u64::from(u32::MAX)).contains(&req.gas_limit) {
        return Err(BuildError::GasLimit {
            got: req.gas_limit,
            min: MIN_GAS_LIMIT,
        });
    }
    if req.gas_price == 0 {
        return Err(BuildError::GasPrice);
    }
    let gas_fee = req
        .gas_limit
        .checked_mul(req.gas_price)
        .ok_or(BuildError::Overflow { what: "gas fee" })?;
    let unsigned_len =
        contract_script(signer.hash160, &[], req.gas_limit, req.gas_price, &req.op).len();
    let size_fee = |n: usize, change: bool| -> u64 {
        (max_size(n, unsigned_len, change) as u64 * req.fee_per_kvb).div_ceil(1000)
    };
    let base = req.value.checked_add(gas_fee).ok_or(BuildError::Overflow {
        what: "value + gas",
    })?;

    let mut picked = Vec::new();
    let mut total: u64 = 0;
    let mut plan = None;
    for u in utxos {
        picked.push(*u);
        total = total
            .checked_add(u.value)
            .ok_or(BuildError::Overflow { what: "inputs" })?;
        let n = picked.len();
        let with_change = base + size_fee(n, true);
        if total >= with_change + P2PKH_DUST {
            plan = Some((with_change - req.value, total - with_change));
            break;
        }
        let without = base + size_fee(n, false);
        if total >= without {
            plan = Some((total - req.value, 0));
            break;
        }
    }
    let Some((fee, change)) = plan else {
        return Err(BuildError::InsufficientFunds {
            needed: base + size_fee(utxos.len().max(1), false),
            available: total,
            utxos: utxos.len(),
        });
    };

    let mut outputs = vec![TxOut {
        value: req.value,
        script: contract_script(signer.hash160, &[], req.gas_limit, req.gas_price, &req.op),
    }];
    if change > 0 {
        outputs.push(TxOut {
            value: change,
            script: p2pkh_script(signer.hash160),
        });
    }
    let mut tx = Transaction {
        version: TX_VERSION,
        inputs: picked
            .iter()
            .map(|u| TxIn {
                prevout: u.outpoint,
                script_sig: Vec::new(),
                sequence: TX_SEQUENCE,
            })
            .collect(),
        outputs,
        lock_time: 0,
    };
    signer
        .sign_transaction(&mut tx)
        .expect("a transaction built here has a well-formed sender output");
    Ok(Built { tx, fee, change })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const VECTORS: &str = include_str!("../../tests/vectors/qtum_tx.json");

    fn vectors() -> Value {
        serde_json::from_str(VECTORS).unwrap()
    }

    fn hexv(v: &Value, key: &str) -> Vec<u8> {
        hex::decode(v[key].as_str().unwrap_or_else(|| panic!("{key}"))).unwrap()
    }

    fn addr(v: &Value, key: &str) -> Address {
        Address::from_slice(&hexv(v, key))
    }

    fn b256(v: &Value, key: &str) -> B256 {
        B256::from_slice(&hexv(v, key))
    }

    /// The `<sig+01> <pubkey>` pushed before OP_SENDER, unwrapped from its serialized form.
    fn sender_sig_of(script: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let ops = script_ops(script).unwrap();
        let k = ops
            .iter()
            .position(|r| r.len() == 1 && script[r.start] == OP_SENDER)
            .unwrap();
        let push = &script[ops[k - 1].clone()];
        assert_eq!(push[0], OP_PUSHDATA1);
        let blob = &push[2..];
        assert_eq!(usize::from(blob[0]), blob.len() - 1, "compact-size prefix");
        unlock_parts(&blob[1..])
    }

    fn unlock_parts(script_sig: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let ops = script_ops(script_sig).unwrap();
        assert_eq!(ops.len(), 2);
        (
            script_sig[ops[0].start + 1..ops[0].end].to_vec(),
            script_sig[ops[1].start + 1..ops[1].end].to_vec(),
        )
    }

    fn verifies(digest: &B256, sig_with_type: &[u8], pubkey: &[u8]) -> bool {
        assert_eq!(*sig_with_type.last().unwrap(), SIGHASH_ALL as u8);
        let sig = secp256k1::ecdsa::Signature::from_der(&sig_with_type[..sig_with_type.len() - 1])
            .unwrap();
        let pk = secp256k1::PublicKey::from_slice(pubkey).unwrap();
        let msg = secp256k1::Message::from_digest(digest.0);
        secp256k1::SECP256K1.verify_ecdsa(msg, &sig, &pk).is_ok()
    }

    /// Checks both of a node-signed transaction's signatures against our digests.
    fn node_signatures_verify(signed: &Transaction, contract_vout: usize, sender: Address) {
        let (sig, pk) = sender_sig_of(&signed.outputs[contract_vout].script);
        assert_eq!(hash160_of_pubkey(&pk), sender);
        let digest = sender_sighash(signed, contract_vout, sender).unwrap();
        assert!(verifies(&digest, &sig, &pk), "OP_SENDER signature");
        for n in 0..signed.inputs.len() {
            let (sig, pk) = unlock_parts(&signed.inputs[n].script_sig);
            let digest = input_sighash(signed, n, &p2pkh_script(hash160_of_pubkey(&pk))).unwrap();
            assert!(verifies(&digest, &sig, &pk), "input {n} signature");
        }
    }

    #[test]
    fn script_numbers_are_cscriptnum_bytes() {
        assert_eq!(script_num(0), Vec::<u8>::new());
        assert_eq!(script_num(4), vec![0x04]);
        assert_eq!(script_num(40), vec![0x28]);
        assert_eq!(script_num(128), vec![0x80, 0x00]);
        assert_eq!(script_num(250_000), vec![0x90, 0xd0, 0x03]);
        assert_eq!(script_num(2_500_000), vec![0xa0, 0x25, 0x26]);
        let mut s = Vec::new();
        push_data(&mut s, &[]);
        push_data(&mut s, &[7; 75]);
        push_data(&mut s, &[7; 76]);
        push_data(&mut s, &[7; 256]);
        assert_eq!(&s[..2], &[0x00, 75]);
        assert_eq!(&s[77..79], &[OP_PUSHDATA1, 76]);
        assert_eq!(&s[155..158], &[OP_PUSHDATA2, 0x00, 0x01]);
    }

    #[test]
    fn unsigned_call_is_byte_for_byte_the_nodes_createrawtransaction() {
        let v = vectors();
        let c = &v["raw_call"];
        let sender = addr(&v, "sender_hash160");
        let data = hexv(c, "data");
        let op = ContractOp::Call {
            contract: addr(c, "contract"),
            data: &data,
        };
        let tx = Transaction {
            version: TX_VERSION,
            inputs: vec![TxIn {
                prevout: OutPoint {
                    txid: b256(c, "input_txid"),
                    vout: 0,
                },
                script_sig: vec![],
                sequence: TX_SEQUENCE,
            }],
            outputs: vec![
                TxOut {
                    value: c["value"].as_u64().unwrap(),
                    script: contract_script(sender, &[], 250_000, 40, &op),
                },
                TxOut {
                    value: c["change"].as_u64().unwrap(),
                    script: p2pkh_script(sender),
                },
            ],
            lock_time: 0,
        };
        assert_eq!(hex::encode(tx.serialize()), c["unsigned"].as_str().unwrap());
        assert_eq!(Transaction::parse(&hexv(c, "unsigned")).unwrap(), tx);
    }

    #[test]
    fn node_signed_raw_call_verifies_under_our_digests() {
        let v = vectors();
        let c = &v["raw_call"];
        let sender = addr(&v, "sender_hash160");
        let unsigned = Transaction::parse(&hexv(c, "unsigned")).unwrap();
        let half = Transaction::parse(&hexv(c, "sender_signed")).unwrap();
        let signed = Transaction::parse(&hexv(c, "signed")).unwrap();
        // Step 1 changed only the sender push; the digest does not see it.
        assert_eq!(
            without_sender_sig(&half.outputs[0].script)
                .unwrap()
                .unwrap(),
            unsigned.outputs[0].script
        );
        assert_eq!(
            sender_sighash(&unsigned, 0, sender).unwrap(),
            sender_sighash(&signed, 0, sender).unwrap()
        );
        assert_eq!(half.outputs, signed.outputs);
        node_signatures_verify(&signed, 0, sender);
        assert_eq!(signed.txid(), b256(c, "txid"));
        assert_eq!(
            hex::encode(signed.serialize()),
            c["signed"].as_str().unwrap()
        );
        // The input signature covers the sender signature (legacy sighash of the whole tx) ...
        let (sig, pk) = unlock_parts(&signed.inputs[0].script_sig);
        let before = input_sighash(&unsigned, 0, &p2pkh_script(sender)).unwrap();
        assert!(!verifies(&before, &sig, &pk));
        // ... and the sender signature covers the other outputs.
        let mut changed = signed.clone();
        changed.outputs[1].value -= 1;
        let (ssig, spk) = sender_sig_of(&signed.outputs[0].script);
        assert!(!verifies(
            &sender_sighash(&changed, 0, sender).unwrap(),
            &ssig,
            &spk
        ));
    }

    #[test]
    fn wallet_made_create_and_call_have_our_script_layout_and_digests() {
        let v = vectors();
        let sender = addr(&v, "sender_hash160");
        for (name, is_create) in [("wallet_create", true), ("wallet_deposit", false)] {
            let c = &v[name];
            let tx = Transaction::parse(&hexv(c, "signed")).unwrap();
            assert_eq!(tx.txid(), b256(c, "txid"), "{name}");
            let vout = c["contract_vout"].as_u64().unwrap() as usize;
            node_signatures_verify(&tx, vout, sender);
            let code_or_data = hexv(c, if is_create { "code" } else { "data" });
            let op = if is_create {
                ContractOp::Create {
                    code: &code_or_data,
                }
            } else {
                ContractOp::Call {
                    contract: addr(c, "contract"),
                    data: &code_or_data,
                }
            };
            let (sig, pk) = sender_sig_of(&tx.outputs[vout].script);
            let signer_like = TxSigner {
                secret: ClaimSecret::from_bytes([1; 32]).unwrap(),
                pubkey: pk.clone().try_into().unwrap(),
                hash160: sender,
            };
            let mut blob = Vec::new();
            write_bytes(&mut blob, &signer_like.unlocking_script(&sig));
            let ours = contract_script(
                sender,
                &blob,
                c["gas_limit"].as_u64().unwrap(),
                c["gas_price"].as_u64().unwrap(),
                &op,
            );
            assert_eq!(
                hex::encode(&ours),
                hex::encode(&tx.outputs[vout].script),
                "{name}"
            );
            assert_eq!(tx.outputs[vout].value, c["value"].as_u64().unwrap_or(0));
        }
    }

    fn key(byte: u8) -> TxSigner {
        TxSigner::new(ClaimSecret::from_bytes([byte; 32]).unwrap())
    }

    fn utxo(n: u8, value: u64) -> Utxo {
        Utxo {
            outpoint: OutPoint {
                txid: B256::from([n; 32]),
                vout: u32::from(n),
            },
            value,
        }
    }

    fn call<'a>(data: &'a [u8], value: u64) -> ContractTx<'a> {
        ContractTx {
            op: ContractOp::Call {
                contract: Address::from([0xe4; 20]),
                data,
            },
            value,
            gas_limit: 250_000,
            gas_price: 40,
            fee_per_kvb: RELAY_FEE_PER_KVB,
        }
    }

    #[test]
    fn built_call_is_signed_funded_and_priced() {
        let signer = key(7);
        let data = [0xb2, 0x14, 0xfa, 0xa5, 1, 2, 3];
        let utxos = [utxo(1, 100_000_000), utxo(2, 100_000_000)];
        let built = build_contract_tx(&signer, &utxos, &call(&data, 150_000_000)).unwrap();
        let tx = &built.tx;
        assert_eq!(tx.inputs.len(), 2, "1 QTUM does not cover 1.5 QTUM + gas");
        assert_eq!(tx.outputs[0].value, 150_000_000);
        assert_eq!(tx.outputs[1].script, p2pkh_script(signer.hash160()));
        let out: u64 = tx.outputs.iter().map(|o| o.value).sum();
        assert_eq!(200_000_000 - out, built.fee);
        assert_eq!(built.change, tx.outputs[1].value);
        let size = tx.serialize().len() as u64;
        let gas = 250_000 * 40;
        assert!(
            built.fee >= gas + size * 400,
            "fee {} size {size}",
            built.fee
        );
        // The estimate assumes 71-byte signatures; low-R ones are 70 or 71 (+ type byte).
        assert!(
            built.fee <= gas + (size + 3) * 400,
            "fee {} size {size}",
            built.fee
        );
        node_signatures_verify(tx, 0, signer.hash160());
        for input in &tx.inputs {
            let (sig, _) = unlock_parts(&input.script_sig);
            assert!(sig.len() <= 71 && sig[4] < 0x80, "low R");
        }
        // Deterministic: the same request signs to the same bytes.
        let again = build_contract_tx(&signer, &utxos, &call(&data, 150_000_000)).unwrap();
        assert_eq!(again.tx, built.tx);
    }

    #[test]
    fn create_has_no_value_and_pays_gas() {
        let signer = key(9);
        let code = vec![0x60; 2000];
        let req = ContractTx {
            op: ContractOp::Create { code: &code },
            value: 0,
            gas_limit: 2_500_000,
            gas_price: 40,
            fee_per_kvb: RELAY_FEE_PER_KVB,
        };
        let built = build_contract_tx(&signer, &[utxo(1, 2_000_000_000_000)], &req).unwrap();
        assert_eq!(built.tx.outputs[0].value, 0);
        let script = &built.tx.outputs[0].script;
        assert_eq!(*script.last().unwrap(), OP_CREATE);
        assert!(built.fee > 100_000_000);
        node_signatures_verify(&built.tx, 0, signer.hash160());
    }

    #[test]
    fn dust_change_goes_to_the_fee_and_shortfalls_are_refused() {
        let signer = key(3);
        let data = [1u8; 36];
        let req = call(&data, 0);
        let exact = build_contract_tx(&signer, &[utxo(1, 1_000_000_000)], &req).unwrap();
        let needed = 1_000_000_000 - exact.change;
        // Just enough for value + gas + fee with change, plus a change below dust: no change.
        let close = build_contract_tx(&signer, &[utxo(1, needed + P2PKH_DUST - 1)], &req).unwrap();
        assert_eq!(close.tx.outputs.len(), 1);
        assert_eq!(close.change, 0);
        assert_eq!(close.fee, needed + P2PKH_DUST - 1);
        let err = build_contract_tx(&signer, &[utxo(1, 10_000_000)], &req).unwrap_err();
        assert!(
            matches!(err, BuildError::InsufficientFunds { available: 10_000_000, utxos: 1, needed } if needed > 10_000_000),
            "{err}"
        );
        assert_eq!(
            build_contract_tx(
                &signer,
                &[],
                &ContractTx {
                    gas_limit: 21_999,
                    ..req
                }
            )
            .unwrap_err(),
            BuildError::GasLimit {
                got: 21_999,
                min: MIN_GAS_LIMIT
            }
        );
        assert_eq!(
            build_contract_tx(
                &signer,
                &[],
                &ContractTx {
                    gas_price: 0,
                    ..req
                }
            )
            .unwrap_err(),
            BuildError::GasPrice
        );
    }

    #[test]
    fn parse_refuses_garbage() {
        assert!(matches!(
            Transaction::parse(&[2, 0, 0, 0, 5]),
            Err(TxError::Truncated { .. })
        ));
        assert!(matches!(
            Transaction::parse(&[2, 0, 0, 0, 0, 1]),
            Err(TxError::Segwit { flag: 1 })
        ));
        assert!(matches!(
            without_sender_sig(&[0x4c]),
            Err(TxError::BadPush { at: 0 })
        ));
        assert_eq!(
            without_sender_sig(&p2pkh_script(Address::ZERO)).unwrap(),
            None
        );
        let signer = key(7);
        assert_eq!(
            format!("{signer:?}"),
            format!("TxSigner {{ hash160: {:?}, .. }}", signer.hash160())
        );
    }
}
