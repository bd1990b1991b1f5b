use super::*;

fn view(balance: u128) -> AccountView {
    AccountView {
        balance,
        spent_today: 0,
        day: 100,
        nonce: 3,
        per_payment: 1_000,
        per_day: 1_500,
        controller: Address::ZERO,
        owner: None,
    }
}

/// Two decimals, so the figures read easily.
fn asset() -> Asset {
    Asset::new("QTUM", 2).unwrap()
}

fn settings() -> WalletSettings {
    WalletSettings {
        per_payment: 1_000,
        per_day: 1_500,
        confirm_above: 500,
        order_window: 3_600,
        pay_expiry: 30 * 86_400,
    }
}

fn pay(v: &AccountView, amount: u128, today: u64, confirmed: bool) -> PayDecision {
    judge_pay(&settings(), v, amount, today, confirmed, false, &asset())
}

/// The account commitment of docs/PROTOCOL.md's wallet vectors.
#[test]
fn account_ids_match_the_protocol_vectors() {
    let salt = Salt::from_bytes(core::array::from_fn(|i| i as u8));
    assert_eq!(
        account_id("bob@example.com", &salt).to_string(),
        "0xffc8aebd829a7513f31a4313d8c1fdee536b9b94ea8bfa98fe8c8fd45d64cd6b"
    );
    let salt = Salt::from_bytes(core::array::from_fn(|i| 0x10 + i as u8));
    assert_eq!(
        account_id("carol@example.net", &salt).to_string(),
        "0x64e4d4591d94db0bc7add3932d41cb83c6d4d8e032e1641810eaadf2052d21fe"
    );
}

#[test]
fn a_payment_within_balance_and_limits_acts_and_above_confirm_asks_first() {
    let v = view(2_000);
    assert_eq!(pay(&v, 400, 100, false), PayDecision::Act);
    assert_eq!(
        pay(&v, 500, 100, false),
        PayDecision::Act,
        "the limit itself needs no code"
    );
    assert_eq!(pay(&v, 501, 100, false), PayDecision::AskConfirm);
    assert_eq!(pay(&v, 501, 100, true), PayDecision::Act);
}

#[test]
fn a_payment_above_balance_or_a_limit_is_refused_with_the_figures() {
    let v = view(300);
    let PayDecision::Refuse(s) = pay(&v, 301, 100, true) else {
        panic!("over balance must be refused")
    };
    assert!(s.contains("3 QTUM") && s.contains("3.01 QTUM"), "{s}");
    let v = view(5_000);
    let PayDecision::Refuse(s) = pay(&v, 1_001, 100, true) else {
        panic!("over the per-payment limit must be refused")
    };
    assert!(s.contains("per payment"), "{s}");
    let spent = AccountView {
        spent_today: 1_000,
        ..view(5_000)
    };
    let PayDecision::Refuse(s) = pay(&spent, 600, 100, true) else {
        panic!("over the day's limit must be refused")
    };
    assert!(s.contains("today") && s.contains("5 QTUM"), "{s}");
    // The next day the spending restarts.
    assert_eq!(pay(&spent, 600, 101, true), PayDecision::Act);
    assert!(matches!(
        judge_pay(&settings(), &view(5_000), 10, 100, true, true, &asset()),
        PayDecision::Refuse(_)
    ));
}

fn link() -> ClaimLink {
    ClaimLink {
        chain_id: 8890,
        escrow: Address::repeat_byte(0x11),
        secret: springmail_sdk::keys::ClaimSecret::from_bytes([7; 32]).unwrap(),
        salt: Salt::from_bytes([9; 16]),
    }
}

#[test]
fn a_quoted_link_is_found_in_a_reply_and_a_broken_one_is_not() {
    let l = link();
    let body = format!(
        "claim\n\nOn Mon, Alice wrote:\n> Open https://claim.example/claim?from=a#{}\n> bye\n",
        l.to_bare()
    );
    assert_eq!(
        find_link(&[body]).map(|f| f.claim_key()),
        Some(l.claim_key())
    );
    let mut bare = l.to_bare();
    bare.truncate(bare.len() - 3);
    assert!(find_link(&[format!("> {bare}\n")]).is_none());
    assert!(find_link(&["sm1. nothing here".into()]).is_none());
}

struct NoChain;

#[async_trait::async_trait]
impl WalletChain for NoChain {
    fn chain_id(&self) -> u64 {
        8890
    }
    fn escrow(&self) -> Address {
        Address::repeat_byte(0x11)
    }
    async fn now(&self) -> Result<u64, WalletChainError> {
        unreachable!()
    }
    async fn account(&self, _: B256) -> Result<Option<AccountView>, WalletChainError> {
        unreachable!()
    }
    async fn deposit(&self, _: Address) -> Result<DepositStatus, WalletChainError> {
        unreachable!()
    }
    async fn open_account(&self, _: B256, _: u128, _: u128) -> Result<Sent, WalletChainError> {
        unreachable!()
    }
    async fn claim_into(
        &self,
        _: &ClaimLink,
        _: B256,
        _: u32,
        _: B256,
    ) -> Result<(Sent, u128), WalletChainError> {
        unreachable!()
    }
    async fn transfer(
        &self,
        _: B256,
        _: B256,
        _: u128,
        _: u32,
        _: B256,
    ) -> Result<Sent, WalletChainError> {
        unreachable!()
    }
    async fn pay_email(
        &self,
        _: B256,
        _: &str,
        _: u128,
        _: u32,
        _: B256,
        _: &ClaimLink,
    ) -> Result<NewDeposit, WalletChainError> {
        unreachable!()
    }
    async fn withdraw(
        &self,
        _: B256,
        _: Address,
        _: u128,
        _: u32,
        _: B256,
    ) -> Result<Sent, WalletChainError> {
        unreachable!()
    }
    async fn bind_owner(
        &self,
        _: B256,
        _: Address,
        _: u32,
        _: B256,
    ) -> Result<Sent, WalletChainError> {
        unreachable!()
    }
}

fn mail(subject: &str, body: &str) -> Authenticated {
    Authenticated {
        from: "bob@example.com".into(),
        from_domain: "example.com".into(),
        signer_domain: "example.com".into(),
        message_id: Some("m1@example.com".into()),
        msgid_hash: "abcd".into(),
        subject: subject.into(),
        references: vec!["n1@example.com".into()],
        texts: vec![body.into()],
    }
}

fn raw(date: &str) -> Vec<u8> {
    format!("From: bob@example.com\r\nDate: {date}\r\nSubject: x\r\n\r\nbody\r\n").into_bytes()
}

const NOW: u64 = 1_796_000_000;
const NOW_DATE: &str = "Mon, 30 Nov 2026 00:50:00 +0000";

fn intake(subject: &str, body: &str, raw: &[u8]) -> Option<Request> {
    let w = Wallet::new(settings(), Arc::new(NoChain));
    w.intake(&mail(subject, body), raw, NOW).map(|i| i.request)
}

#[test]
fn intake_reads_pay_balance_confirm_and_a_plain_reply_to_a_notification() {
    let r = raw(NOW_DATE);
    assert_eq!(
        intake("pay 0.5 QTUM to Carol@Outlook.test", "", &r).or(intake(
            "x",
            "pay 0.5 QTUM to Carol@Outlook.test\n",
            &r
        )),
        Some(Request::Pay {
            amount: "50000000".into(),
            to: Target::Email("carol@outlook.test".into()),
            confirmed: false,
            ordered_by: None,
            name: None,
            note: None,
            resolve: None,
        })
    );
    assert_eq!(intake("", "balance\n", &r), Some(Request::Balance));
    assert_eq!(
        intake("", "confirm k7qm 2xhd\n", &r),
        Some(Request::Confirm {
            code: Some("K7QM-2XHD".into()),
            thread: vec!["n1@example.com".into()]
        })
    );
    let quoted = format!("\n\n> {}\n", link().to_bare());
    assert!(matches!(
        intake("Re: x sent you 1 QTUM", &quoted, &r),
        Some(Request::Claim { link: Some(_) })
    ));
    // Neither an order nor a notification: the claim path's.
    assert_eq!(intake("Hello", "just chatting\n", &r), None);
    // A CLAIM block stays on the claim path.
    assert_eq!(
        intake(
            "",
            "-----BEGIN BISMTP CLAIM-----\nVersion: 1\n-----END BISMTP CLAIM-----\n",
            &r
        ),
        None
    );
}

#[test]
fn a_pay_older_than_the_window_or_undated_is_refused_at_intake() {
    let old = raw("Sun, 29 Nov 2026 20:00:00 +0000");
    assert!(matches!(
        intake("", "pay 1 QTUM to carol@outlook.test\n", &old),
        Some(Request::Refuse { sentence }) if sentence.contains("longer ago")
    ));
    let undated = b"From: bob@example.com\r\nSubject: x\r\n\r\nbody\r\n".to_vec();
    assert!(matches!(
        intake("", "pay 1 QTUM to carol@outlook.test\n", &undated),
        Some(Request::Refuse { .. })
    ));
    // BALANCE has no window.
    assert_eq!(intake("", "balance\n", &old), Some(Request::Balance));
}

#[test]
fn a_mistyped_order_is_answered_not_ignored() {
    let r = raw(NOW_DATE);
    assert!(matches!(
        intake("", "pay carol@outlook.test 1 QTUM\n", &r),
        Some(Request::Refuse { sentence }) if sentence.contains("write it as")
    ));
}

#[test]
fn replies_have_one_sentence_first_in_text_and_html_and_escape_html() {
    let b = text::Body::new("Paid 1 QTUM to <x>.")
        .then("more")
        .item("a & b");
    assert!(b.text().starts_with("Hello,\n\nPaid 1 QTUM to <x>.\n"));
    assert!(b.html().contains("<p>Paid 1 QTUM to &lt;x&gt;.</p>"));
    assert!(b.html().contains("a &amp; b"));
}

#[test]
fn an_account_row_does_not_print_its_salt() {
    let row = store::AccountRow {
        email: "bob@example.com".into(),
        account: "0x01".into(),
        salt: "00112233445566778899aabbccddeeff".into(),
        opened_tx: None,
    };
    assert!(!format!("{row:?}").contains("0011223344"));
}

#[test]
fn the_wallet_section_names_each_bad_key_and_reads_good_values() {
    let asset = Asset::qtum();
    let mut issues = Vec::new();
    let good = RawWallet {
        enabled: Some(true),
        per_payment: Some("2".into()),
        per_day: Some("5.5".into()),
        confirm_above: Some("0.5".into()),
        order_window_secs: Some(600),
        pay_expiry_secs: Some(3_600),
    };
    assert_eq!(
        good.validate(&asset, &mut issues),
        Some(WalletSettings {
            per_payment: 200_000_000,
            per_day: 550_000_000,
            confirm_above: 50_000_000,
            order_window: 600,
            pay_expiry: 3_600,
        })
    );
    assert!(issues.is_empty());
    let bad = RawWallet {
        enabled: Some(true),
        per_payment: Some("6".into()),
        per_day: Some("5".into()),
        confirm_above: Some("lots".into()),
        order_window_secs: Some(5),
        pay_expiry_secs: Some(10),
    };
    assert_eq!(bad.validate(&asset, &mut issues), None);
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "wallet.confirm_above",
            "wallet.order_window_secs",
            "wallet.pay_expiry_secs",
            "wallet.per_payment"
        ]
    );
    issues.clear();
    assert_eq!(
        RawWallet::default().validate(&asset, &mut issues),
        None,
        "off unless enabled"
    );
}

#[test]
fn an_unknown_key_in_the_wallet_section_is_named() {
    let text = r#"
[wallet]
enabled = true
per_paymnet = "1"
"#;
    let err = crate::config::RawConfig::parse(text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("per_paymnet"), "{err}");
}

/// The vectors of docs/PROTOCOL-TEXT.md, *BIND's signed text*.
#[test]
fn bind_signatures_match_the_vectors_and_bind_only_their_mailbox_and_key() {
    let key = springmail_sdk::keys::ClaimSecret::from_bytes(
        hex::decode("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
            .unwrap()
            .try_into()
            .unwrap(),
    )
    .unwrap();
    let escrow: Address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
        .parse()
        .unwrap();
    let cases = [
        (
            key.address(),
            "qMcTJfub3U88y3vBekGfr9g7g6wcLT6R3w",
            "0x156f8e49f0b634649b572b0c8015f18ddcfe6d542ebe400cd414525a65b3517e",
            "3fd430a1516e651e3bd99eb7e97d5a1c2ef1b78c495b30f6c6690c6d056231277485bfaf5fe3034415574fef9af4deb7f0a0509220d8e3e6da0c4f7a29e9b7901c",
        ),
        (
            springmail_sdk::qtum::qtum_sender_of_secret(&key),
            "qXjRfUiTSbsUYVVmkQ8eS8mHhU5cAVyvTW",
            "0x0a10316ef668e0adcf2e1bdf0e7f039403f88a89e7509ee1a399c8294a111168",
            "b9f5d0f0025ae4d236981c7588e147d4b8d4a9af659572cb61ccf263d98e923b758d4352e7dd4635b267550093432aa825639956c69d2a4080513f68851011d61c",
        ),
    ];
    for (owner, written, digest, sig) in cases {
        let text = bind_text("bob@example.com", 8890, escrow, owner);
        assert!(text.ends_with(&format!("Owner: {written}\n")), "{text}");
        assert_eq!(bind_digest(&text).to_string(), digest);
        let sig =
            springmail_sdk::keys::Signature::from_slice("Signature", &hex::decode(sig).unwrap())
                .unwrap();
        assert_eq!(key.sign_digest(&bind_digest(&text)), sig);
        assert!(bind_signature_valid(
            "bob@example.com",
            8890,
            escrow,
            owner,
            &sig
        ));
        // Not for another mailbox, escrow or owner.
        assert!(!bind_signature_valid(
            "carol@example.net",
            8890,
            escrow,
            owner,
            &sig
        ));
        assert!(!bind_signature_valid(
            "bob@example.com",
            8890,
            Address::ZERO,
            owner,
            &sig
        ));
        assert!(!bind_signature_valid(
            "bob@example.com",
            8890,
            escrow,
            Address::repeat_byte(1),
            &sig
        ));
    }
}

#[test]
fn a_bind_is_taken_only_with_the_owner_keys_signature_for_this_mailbox() {
    let key = springmail_sdk::keys::ClaimSecret::random();
    let escrow = Address::repeat_byte(0x11);
    let owner = key.address();
    let written = springmail_sdk::qtum::format_address(8890, owner);
    let sig = key.sign_digest(&bind_digest(&bind_text(
        "bob@example.com",
        8890,
        escrow,
        owner,
    )));
    let r = raw(NOW_DATE);
    assert_eq!(
        intake(
            "",
            &format!("bind {written} 0x{}\n", hex::encode(sig.0)),
            &r
        ),
        Some(Request::Bind { owner })
    );
    // Carol's signature text signed by the same key does not bind Bob's wallet.
    let other = key.sign_digest(&bind_digest(&bind_text(
        "carol@example.net",
        8890,
        escrow,
        owner,
    )));
    assert!(matches!(
        intake("", &format!("bind {written} 0x{}\n", hex::encode(other.0)), &r),
        Some(Request::Refuse { sentence }) if sentence.contains("binding text")
    ));
}

#[test]
fn an_order_in_the_subject_of_an_empty_mail_is_read_and_html_only_mail_is_not() {
    let w = Wallet::new(settings(), Arc::new(NoChain));
    let mut m = mail("balance", "");
    assert_eq!(
        w.intake(&m, &raw(NOW_DATE), NOW).map(|i| i.request),
        Some(Request::Balance)
    );
    m.texts.clear();
    assert_eq!(
        w.intake(&m, &raw(NOW_DATE), NOW),
        None,
        "HTML-only: the claim path answers"
    );
}

fn ctx() -> ReplyContext {
    ReplyContext::of(&mail("pay", ""))
}

/// A replay under another UID (same bytes, so the same mail hash) is not a second order.
#[test]
fn the_same_mail_is_recorded_as_an_order_once() {
    let c = rusqlite::Connection::open_in_memory().unwrap();
    store::create(&c).unwrap();
    let r = Request::Balance;
    assert!(store::insert_order(&c, 1, "bob@example.com", "0xaa", &r, &ctx(), 10).unwrap());
    assert!(!store::insert_order(&c, 2, "bob@example.com", "0xaa", &r, &ctx(), 11).unwrap());
    assert!(store::insert_order(&c, 3, "bob@example.com", "0xbb", &r, &ctx(), 12).unwrap());
    let open = store::open_orders(&c).unwrap();
    assert_eq!(
        open.iter().map(|o| o.message_id).collect::<Vec<_>>(),
        [1, 3]
    );
}

/// A code finds only its own mailbox's waiting payment; a bare confirm only in the
/// thread of the confirmation it answers.
#[test]
fn a_confirmation_names_one_waiting_payment_of_its_own_mailbox() {
    let c = rusqlite::Connection::open_in_memory().unwrap();
    store::create(&c).unwrap();
    let pay = Request::Pay {
        amount: "5".into(),
        to: Target::Email("carol@example.net".into()),
        confirmed: false,
        ordered_by: None,
        name: None,
        note: None,
        resolve: None,
    };
    store::insert_order(&c, 1, "bob@example.com", "0x01", &pay, &ctx(), 1).unwrap();
    let id = store::open_orders(&c).unwrap()[0].id;
    store::await_confirm(
        &c,
        id,
        &pay,
        "K7QM-2XHD",
        "springmail.x.wallet-confirm@b",
        2,
    )
    .unwrap();
    assert!(
        store::open_orders(&c).unwrap().is_empty(),
        "waits, not worked on"
    );
    let by_code = store::awaiting(&c, "bob@example.com", Some("K7QM-2XHD"), &[]).unwrap();
    assert_eq!(by_code.map(|o| o.id), Some(id));
    assert!(
        store::awaiting(&c, "mallory@example.com", Some("K7QM-2XHD"), &[])
            .unwrap()
            .is_none()
    );
    assert!(
        store::awaiting(&c, "bob@example.com", Some("K7QM-2XHE"), &[])
            .unwrap()
            .is_none()
    );
    let thread = vec!["springmail.x.wallet-confirm@b".to_string()];
    assert_eq!(
        store::awaiting(&c, "bob@example.com", None, &thread)
            .unwrap()
            .map(|o| o.id),
        Some(id)
    );
    assert!(store::awaiting(&c, "bob@example.com", None, &[])
        .unwrap()
        .is_none());
    store::set_state(&c, id, store::State::Confirmed, None, None, None, 3).unwrap();
    assert!(
        store::awaiting(&c, "bob@example.com", Some("K7QM-2XHD"), &[])
            .unwrap()
            .is_none(),
        "a code confirms once"
    );
}
