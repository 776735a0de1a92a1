use super::*;

/// Golden vectors computed independently with pyca/cryptography by
/// `golden.py` beside this file; they pin the on-disk and on-wire formats.
const GOLDEN_DOC: &str =
    "01101112131415161718191a1bd126c22cd8b928a236d7390016cc3a21319bf0b5fc990b515a0e707bf7c6c9a1";
const GOLDEN_SEALED: &str = "5342534b01000000400000000100000001202122232425262728292a2b2c2d2e2f303132333435363738393a3b3aae64cbe508dc321780883a95cb9dd6953cffe64e148ea72d909e472f5a4c25a3e1d4042ff2931a0d2db3448cae0f40";
const FAST: KdfParams = KdfParams {
    m_cost_kib: 64,
    t_cost: 1,
    p_cost: 1,
};

fn golden_secret() -> UserSecret {
    UserSecret::from_bytes(std::array::from_fn(|i| i as u8))
}

fn seq<const N: usize>(start: u8) -> [u8; N] {
    std::array::from_fn(|i| start + i as u8)
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn golden_document_ciphertext() {
    let c = DocCipher::new(&golden_secret());
    let ct = c.encrypt_with_nonce("inbox.1", "abc:1", b"hello, syncbench", seq(0x10));
    assert_eq!(hex(&ct), GOLDEN_DOC);
    assert_eq!(
        c.decrypt("inbox.1", "abc:1", &unhex(GOLDEN_DOC)).unwrap(),
        b"hello, syncbench"
    );
}

#[test]
fn golden_sealed_secret() {
    let sealed = golden_secret()
        .seal_with("correct horse", FAST, seq(0x20), seq(0x30))
        .unwrap();
    assert_eq!(hex(&sealed), GOLDEN_SEALED);
    let opened = UserSecret::unseal(&unhex(GOLDEN_SEALED), "correct horse").unwrap();
    assert_eq!(opened.0, golden_secret().0);
}

#[test]
fn round_trip_all_sizes() {
    let c = DocCipher::new(&UserSecret::generate().unwrap());
    for len in [0, 1, 15, 16, 17, 1024, 65536 + 3] {
        let pt: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let ct = c.encrypt("d", "r:1", &pt).unwrap();
        assert_eq!(ct.len(), pt.len() + DOC_OVERHEAD);
        assert_eq!(c.decrypt("d", "r:1", &ct).unwrap(), pt);
    }
}

#[test]
fn same_plaintext_twice_gives_different_ciphertexts() {
    let c = DocCipher::new(&UserSecret::generate().unwrap());
    assert_ne!(
        c.encrypt("d", "r:1", b"x").unwrap(),
        c.encrypt("d", "r:1", b"x").unwrap()
    );
}

#[test]
fn any_flipped_bit_is_detected() {
    let c = DocCipher::new(&golden_secret());
    let ct = unhex(GOLDEN_DOC);
    for i in 1..ct.len() {
        let mut bad = ct.clone();
        bad[i] ^= 0x01;
        assert!(
            matches!(
                c.decrypt("inbox.1", "abc:1", &bad),
                Err(CryptoError::Tampered { .. })
            ),
            "byte {i}"
        );
    }
    let mut bad = ct.clone();
    bad[0] = 9;
    assert!(matches!(
        c.decrypt("inbox.1", "abc:1", &bad),
        Err(CryptoError::Malformed { .. })
    ));
    assert!(matches!(
        c.decrypt("inbox.1", "abc:1", &ct[..20]),
        Err(CryptoError::Malformed { .. })
    ));
    let e = c
        .decrypt("inbox.1", "abc:1", &ct[..ct.len() - 1])
        .unwrap_err();
    assert!(matches!(e, CryptoError::Tampered { .. }), "{e}");
}

#[test]
fn server_cannot_swap_documents() {
    let c = DocCipher::new(&golden_secret());
    let ct = unhex(GOLDEN_DOC);
    let e = c.decrypt("inbox.2", "abc:1", &ct).unwrap_err();
    assert!(
        e.to_string().contains("\"inbox.2\" failed authentication"),
        "{e}"
    );
}

#[test]
fn server_cannot_roll_back_a_revision() {
    // Content of revision abc:1 offered as revision abc:2 (an old version
    // replayed under a newer revision) fails.
    let c = DocCipher::new(&golden_secret());
    let ct = unhex(GOLDEN_DOC);
    assert!(matches!(
        c.decrypt("inbox.1", "abc:2", &ct),
        Err(CryptoError::Tampered { .. })
    ));
}

#[test]
fn another_users_key_fails() {
    let other = DocCipher::new(&UserSecret::generate().unwrap());
    assert!(matches!(
        other.decrypt("inbox.1", "abc:1", &unhex(GOLDEN_DOC)),
        Err(CryptoError::Tampered { .. })
    ));
}

#[test]
fn wrong_passphrase_is_reported_not_garbage() {
    let sealed = unhex(GOLDEN_SEALED);
    let e = UserSecret::unseal(&sealed, "correct horse!").unwrap_err();
    assert!(matches!(e, CryptoError::WrongPassphrase), "{e}");
    // The cost parameters live in the authenticated header: lowering them
    // (to speed up guessing) breaks the seal.
    let mut weakened = sealed.clone();
    weakened[8] = 32;
    assert!(matches!(
        UserSecret::unseal(&weakened, "correct horse"),
        Err(CryptoError::WrongPassphrase)
    ));
    assert!(matches!(
        UserSecret::unseal(&sealed[1..], "x"),
        Err(CryptoError::MalformedSecret(_))
    ));
}

#[test]
fn seal_round_trip_with_default_params() {
    let s = UserSecret::generate().unwrap();
    let sealed = s.seal("pass phrase", KdfParams::default()).unwrap();
    assert_eq!(UserSecret::unseal(&sealed, "pass phrase").unwrap().0, s.0);
}

#[test]
fn token_helpers() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    assert_eq!(random_hex(16).unwrap().len(), 32);
    assert_eq!(
        hex(&token_hash("abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
