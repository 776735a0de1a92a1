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

mod blobs {
    use super::*;
    use crate::stream::{BLOB_HEADER_LEN, SEGMENT, ciphertext_len};
    use std::io::Read;

    fn cipher() -> DocCipher {
        DocCipher::new(&golden_secret())
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn seal(c: &DocCipher, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        c.encrypt_blob("mail", "m1", plain)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn open(c: &DocCipher, ns: &str, id: &str, ct: &[u8]) -> Result<Vec<u8>, BlobError> {
        let mut out = Vec::new();
        c.decrypt_blob(ns, id, ct)
            .read_to_end(&mut out)
            .map_err(|e| BlobError::of(&e).expect("a blob error").clone())?;
        Ok(out)
    }

    /// Reads in odd-sized pieces, to exercise partial reads on both sides.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn round_trip_at_every_segment_boundary() {
        let c = cipher();
        for n in [
            0,
            1,
            SEGMENT - 1,
            SEGMENT,
            SEGMENT + 1,
            2 * SEGMENT,
            3 * SEGMENT + 17,
        ] {
            let plain = data(n);
            let ct = seal(&c, &plain);
            assert_eq!(ct.len() as u64, ciphertext_len(n as u64), "size {n}");
            assert_eq!(open(&c, "mail", "m1", &ct).unwrap(), plain, "size {n}");
            // Same through readers that hand out 1000 bytes at a time.
            let mut ct2 = Vec::new();
            c.encrypt_blob("mail", "m1", Trickle(&plain, 1000))
                .unwrap()
                .read_to_end(&mut ct2)
                .unwrap();
            let mut back = Vec::new();
            c.decrypt_blob("mail", "m1", Trickle(&ct2, 999))
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, plain, "size {n} in small reads");
        }
    }

    #[test]
    fn two_encryptions_differ() {
        let c = cipher();
        assert_ne!(seal(&c, b"same"), seal(&c, b"same"));
    }

    #[test]
    fn truncation_is_detected_anywhere() {
        let c = cipher();
        let ct = seal(&c, &data(2 * SEGMENT + 100));
        let seg = SEGMENT + 16;
        for cut in [
            0,
            3,
            BLOB_HEADER_LEN,
            BLOB_HEADER_LEN + 10,
            BLOB_HEADER_LEN + seg,     // at a segment boundary
            BLOB_HEADER_LEN + 2 * seg, // the last segment missing whole
            ct.len() - 1,
        ] {
            assert!(open(&c, "mail", "m1", &ct[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn truncation_of_an_exact_multiple_is_detected() {
        let c = cipher();
        let ct = seal(&c, &data(2 * SEGMENT));
        let cut = BLOB_HEADER_LEN + SEGMENT + 16;
        assert_eq!(
            open(&c, "mail", "m1", &ct[..cut]),
            Err(BlobError::Tampered { segment: 0 })
        );
    }

    #[test]
    fn reordered_appended_and_flipped_bytes_are_detected() {
        let c = cipher();
        let ct = seal(&c, &data(3 * SEGMENT));
        let seg = SEGMENT + 16;
        let h = BLOB_HEADER_LEN;
        let mut swapped = ct[..h].to_vec();
        swapped.extend_from_slice(&ct[h + seg..h + 2 * seg]);
        swapped.extend_from_slice(&ct[h..h + seg]);
        swapped.extend_from_slice(&ct[h + 2 * seg..]);
        assert!(open(&c, "mail", "m1", &swapped).is_err());

        let mut appended = ct.clone();
        appended.extend_from_slice(&ct[h..h + seg]);
        assert!(open(&c, "mail", "m1", &appended).is_err());

        for pos in [0, 5, h, h + seg - 1, h + seg + 3, ct.len() - 1] {
            let mut bad = ct.clone();
            bad[pos] ^= 1;
            assert!(open(&c, "mail", "m1", &bad).is_err(), "flip at {pos}");
        }
    }

    #[test]
    fn another_id_namespace_or_key_fails() {
        let c = cipher();
        let ct = seal(&c, b"hello");
        assert!(open(&c, "mail", "m2", &ct).is_err());
        assert!(open(&c, "other", "m1", &ct).is_err());
        let other = DocCipher::new(&UserSecret::from_bytes([9; 32]));
        assert_eq!(
            open(&other, "mail", "m1", &ct),
            Err(BlobError::Tampered { segment: 0 })
        );
        assert_eq!(
            open(&c, "mail", "m1", b"not a blob"),
            Err(BlobError::BadHeader)
        );
    }

    #[test]
    fn memory_stays_bounded_for_a_large_stream() {
        // 64 MiB streamed through both readers in fixed buffers: nothing
        // in the readers grows with the stream (they hold one segment).
        let c = cipher();
        let size = 64 * 1024 * 1024u64;
        let enc = c
            .encrypt_blob("b", "big", std::io::repeat(0xab).take(size))
            .unwrap();
        let mut dec = c.decrypt_blob("b", "big", enc);
        let mut buf = vec![0u8; 100_000];
        let mut total = 0u64;
        loop {
            let n = dec.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            assert!(buf[..n].iter().all(|&b| b == 0xab));
            total += n as u64;
        }
        assert_eq!(total, size);
    }
}
