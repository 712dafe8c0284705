#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The device's uses of a key, with software keys standing in for the element (the element
//! through PKCS#11 is exercised by `keyward demo` and `scripts/interop-device`): COSE_Sign1 and
//! detached CMS — verified here and by `openssl cms -verify` — and TLS client authentication
//! against a rustls server and `openssl s_server`, each failing with tampered data, a foreign
//! CA or a revoked certificate.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use keyward_ca::SoftwareKey;
use keyward_ca::x509::{
    AltName, KeyUsage, Name, NameAttr, Reason, RevokedEntry, RsaSoftwareKey, SubjectKey, Template,
    X509Ca, X509Key, eku,
};
use keyward_crypto::{Curve, EcKey, RsaKey};
use keyward_device::tls::{IdentityServer, client_config, https_get, server_config};
use keyward_device::{DeviceKey, Trust, VerifyError, cms, cose, now};

struct Pki {
    issuing: X509Ca,
    root: Vec<u8>,
}

fn pki(name: &str) -> Pki {
    let key = || -> Box<dyn X509Key> {
        Box::new(SoftwareKey::new(EcKey::generate(Curve::Secp256r1).unwrap()))
    };
    let (issuing, root) = X509Ca::root_and_issuing(
        key(),
        key(),
        &Name::common_name(&format!("{name} Root")),
        &Name::common_name(&format!("{name} Issuing")),
        now() - 3600,
    )
    .unwrap();
    Pki { issuing, root }
}

fn template(cn: &str, eku: &'static str, alt: Vec<AltName>) -> Template {
    Template {
        subject: Name::common_name(cn).with(NameAttr::Organization, "Keyward"),
        not_before: now() - 60,
        not_after: now() + 86_400,
        key_usage: vec![KeyUsage::DigitalSignature, KeyUsage::NonRepudiation],
        extended_key_usage: vec![eku],
        alt_names: alt,
        ca: None,
        crl_url: None,
        ocsp_url: None,
        attestation: None,
    }
}

/// A device key of the given kind certified by `pki` (returns the key and its serial).
fn device(pki: &mut Pki, kind: &str) -> (DeviceKey, Vec<u8>) {
    let (key, subject): (Box<dyn X509Key>, SubjectKey) = match kind {
        "rsa" => {
            let k = RsaSoftwareKey(RsaKey::generate(2048).unwrap());
            let s = k.subject_key();
            (Box::new(k), s)
        }
        _ => {
            let curve = if kind == "p384" {
                Curve::Secp384r1
            } else {
                Curve::Secp256r1
            };
            let k = SoftwareKey::new(EcKey::generate(curve).unwrap());
            let s = k.subject_key();
            (Box::new(k), s)
        }
    };
    let issued = pki
        .issuing
        .issue(&template("ZZKWD00042", eku::CLIENT_AUTH, vec![]), &subject)
        .unwrap();
    let chain = vec![issued.der, pki.issuing.certificate.clone()];
    (DeviceKey::new(key, chain).unwrap(), issued.serial)
}

fn workdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("keyward-device-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_pem(dir: &Path, name: &str, certs: &[&[u8]]) -> PathBuf {
    let p = dir.join(name);
    let text: String = certs
        .iter()
        .map(|c| keyward_ca::pem::certificate(c))
        .collect();
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn cose_sign1_verifies_and_tampering_is_refused() {
    let mut ours = pki("Keyward");
    let trust = Trust {
        roots: vec![ours.root.clone()],
        intermediates: vec![],
    };
    let data = b"temperature=21.5C time=2026-11-25T10:00:00Z";
    for kind in ["p256", "p384", "rsa"] {
        let (key, _) = device(&mut ours, kind);
        let msg = cose::sign1(&key, data, false).unwrap();
        let v = cose::verify1(&msg, None, &trust, now()).unwrap();
        assert_eq!(v.payload, data);
        assert_eq!(v.signer[0], "CN=ZZKWD00042, O=Keyward");
        assert_eq!(
            v.signer.len(),
            3,
            "leaf, issuing (carried in x5chain), root"
        );

        // Detached: the payload is supplied by the verifier.
        let detached = cose::sign1(&key, data, true).unwrap();
        assert!(cose::verify1(&detached, Some(data), &trust, now()).is_ok());
        assert!(matches!(
            cose::verify1(&detached, Some(b"temperature=99C"), &trust, now()),
            Err(VerifyError::BadSignature)
        ));

        // A changed payload byte inside the message.
        let mut tampered = msg.clone();
        let at = tampered
            .windows(data.len())
            .position(|w| w == data)
            .unwrap();
        tampered[at + 12] ^= 1;
        assert!(matches!(
            cose::verify1(&tampered, None, &trust, now()),
            Err(VerifyError::BadSignature)
        ));
        // The last signature byte.
        let mut tampered = msg.clone();
        let n = tampered.len();
        tampered[n - 1] ^= 1;
        assert!(cose::verify1(&tampered, None, &trust, now()).is_err());
        // Another installation's root does not vouch for this device.
        let other = pki("Other");
        let foreign = Trust {
            roots: vec![other.root],
            intermediates: vec![],
        };
        assert!(matches!(
            cose::verify1(&msg, None, &foreign, now()),
            Err(VerifyError::Chain(_))
        ));
        // Expired by the time it is checked.
        assert!(matches!(
            cose::verify1(&msg, None, &trust, now() + 2 * 86_400),
            Err(VerifyError::Chain(_))
        ));
    }
}

#[test]
fn cms_detached_verifies_here_and_with_openssl() {
    let dir = workdir("cms");
    let mut ours = pki("Keyward");
    let root_pem = write_pem(&dir, "root.pem", &[&ours.root]);
    let trust = Trust {
        roots: vec![ours.root.clone()],
        intermediates: vec![],
    };
    let data = b"sensor 7: 1013 hPa\n".repeat(100);
    std::fs::write(dir.join("data.txt"), &data).unwrap();
    std::fs::write(dir.join("tampered.txt"), [&data[..], b"!"].concat()).unwrap();
    for kind in ["p256", "p384", "rsa"] {
        let (key, _) = device(&mut ours, kind);
        let sig = cms::sign_detached(&key, &data, now()).unwrap();
        let v = cms::verify_detached(&sig, &data, &trust, now()).unwrap();
        assert_eq!(v.signer[0], "CN=ZZKWD00042, O=Keyward");
        assert!(matches!(
            cms::verify_detached(&sig, &[&data[..], b"!"].concat(), &trust, now()),
            Err(VerifyError::DigestMismatch)
        ));
        let sig_path = dir.join(format!("{kind}.p7s"));
        std::fs::write(&sig_path, &sig).unwrap();
        let openssl = |content: &str| {
            Command::new("openssl")
                .args([
                    "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
                ])
                .arg("-in")
                .arg(&sig_path)
                .arg("-content")
                .arg(dir.join(content))
                .arg("-CAfile")
                .arg(&root_pem)
                .args(["-out", "/dev/null"])
                .output()
                .unwrap()
        };
        let ok = openssl("data.txt");
        assert!(
            ok.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        assert!(String::from_utf8_lossy(&ok.stderr).contains("Verification successful"));
        let bad = openssl("tampered.txt");
        assert!(
            !bad.status.success(),
            "{kind}: openssl refuses tampered data"
        );
        let why = String::from_utf8_lossy(&bad.stderr);
        assert!(why.contains("Verification failure"), "{why}");
        // A flipped bit in the signature value.
        let mut forged = sig.clone();
        let n = forged.len();
        forged[n - 2] ^= 1;
        assert!(cms::verify_detached(&forged, &data, &trust, now()).is_err());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A TLS server identity issued by `pki`: its chain and SEC1 key.
fn server_identity(pki: &mut Pki) -> (Vec<Vec<u8>>, Vec<u8>) {
    let key = EcKey::generate(Curve::Secp256r1).unwrap();
    let issued = pki
        .issuing
        .issue(
            &template(
                "localhost",
                eku::SERVER_AUTH,
                vec![AltName::Dns("localhost".into())],
            ),
            &SubjectKey::Ec {
                curve: Curve::Secp256r1,
                point: key.public_point().to_vec(),
            },
        )
        .unwrap();
    (
        vec![issued.der, pki.issuing.certificate.clone()],
        keyward_ca::der::ec_private_key(&key),
    )
}

#[test]
fn tls_client_authentication_with_a_rustls_server() {
    let mut ours = pki("Keyward");
    let (chain, key) = server_identity(&mut ours);
    let (device_key, serial) = device(&mut ours, "p256");
    let device_key = Arc::new(device_key);
    let client = client_config(device_key.clone(), std::slice::from_ref(&ours.root)).unwrap();
    let url = |port: u16| format!("https://localhost:{port}/whoami");

    let server = IdentityServer::start(
        server_config(&chain, &key, std::slice::from_ref(&ours.root), &[]).unwrap(),
    )
    .unwrap();
    let (status, body) =
        https_get(&url(server.port), client.clone(), Duration::from_secs(10)).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("client: CN=ZZKWD00042, O=Keyward"), "{body}");
    assert!(body.contains("issuer: CN=Keyward Issuing"), "{body}");
    server.stop();

    // The same certificate on the server's CRL: the handshake is refused.
    let crl = ours
        .issuing
        .crl(
            &[RevokedEntry {
                serial,
                revoked_at: now() - 10,
                reason: Reason::KeyCompromise,
            }],
            now() - 60,
            now() + 3600,
            1,
        )
        .unwrap();
    let server = IdentityServer::start(
        server_config(&chain, &key, std::slice::from_ref(&ours.root), &[crl]).unwrap(),
    )
    .unwrap();
    assert!(https_get(&url(server.port), client, Duration::from_secs(10)).is_err());
    server.stop();

    // A device of another installation (another root) is refused too.
    let mut other = pki("Other");
    let (foreign, _) = device(&mut other, "p256");
    let foreign = client_config(Arc::new(foreign), std::slice::from_ref(&ours.root)).unwrap();
    let server = IdentityServer::start(
        server_config(&chain, &key, std::slice::from_ref(&ours.root), &[]).unwrap(),
    )
    .unwrap();
    assert!(https_get(&url(server.port), foreign, Duration::from_secs(10)).is_err());
    server.stop();
}

#[test]
fn tls_client_authentication_with_openssl_s_server() {
    let dir = workdir("tls");
    let mut ours = pki("Keyward");
    let (chain, key) = server_identity(&mut ours);
    let server_cert = write_pem(&dir, "server.pem", &[&chain[0]]);
    let server_chain = write_pem(&dir, "server-chain.pem", &[&chain[1]]);
    std::fs::write(
        dir.join("server.key"),
        keyward_ca::pem::encode("EC PRIVATE KEY", &key),
    )
    .unwrap();
    let root_pem = write_pem(&dir, "root.pem", &[&ours.root]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s_server = Command::new("openssl")
        .args(["s_server", "-accept"])
        .arg(port.to_string())
        .arg("-cert")
        .arg(&server_cert)
        .arg("-cert_chain")
        .arg(&server_chain)
        .arg("-key")
        .arg(dir.join("server.key"))
        .arg("-CAfile")
        .arg(&root_pem)
        .args([
            "-Verify",
            "1",
            "-verify_return_error",
            "-www",
            "-naccept",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (device_key, _) = device(&mut ours, "p256");
    let client = client_config(Arc::new(device_key), std::slice::from_ref(&ours.root)).unwrap();
    let url = format!("https://localhost:{port}/");
    let result = https_get(&url, client, Duration::from_secs(10));
    let mut other = pki("Other");
    let (foreign, _) = device(&mut other, "p256");
    let foreign = client_config(Arc::new(foreign), std::slice::from_ref(&ours.root)).unwrap();
    let refused = https_get(&url, foreign, Duration::from_secs(10));
    let _ = s_server.kill();
    let _ = s_server.wait();
    let (status, body) = result.unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("Client certificate"),
        "s_server saw the client: {body}"
    );
    assert!(
        body.contains("CN=ZZKWD00042") || body.contains("CN = ZZKWD00042"),
        "{body}"
    );
    assert!(refused.is_err(), "s_server refuses a foreign device");
    std::fs::remove_dir_all(&dir).unwrap();
}

mod mutations {
    use super::*;
    use proptest::prelude::*;

    /// A valid COSE message and a valid CMS signature, made once.
    fn samples() -> &'static (Vec<u8>, Vec<u8>, Trust) {
        static S: std::sync::OnceLock<(Vec<u8>, Vec<u8>, Trust)> = std::sync::OnceLock::new();
        S.get_or_init(|| {
            let mut ours = pki("Keyward");
            let (key, _) = device(&mut ours, "p256");
            let trust = Trust {
                roots: vec![ours.root.clone()],
                intermediates: vec![],
            };
            (
                cose::sign1(&key, b"payload", false).unwrap(),
                cms::sign_detached(&key, b"payload", now()).unwrap(),
                trust,
            )
        })
    }

    proptest! {
        #[test]
        fn mutated_messages_are_refused_never_a_panic(
            which in 0..2usize,
            pos in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let (c, m, trust) = samples();
            let mut msg = if which == 0 { c.clone() } else { m.clone() };
            let i = pos.index(msg.len());
            msg[i] = byte;
            let keep = cut.index(msg.len() + 1);
            let truncated = keep < msg.len();
            msg.truncate(keep);
            let r = if which == 0 {
                cose::verify1(&msg, None, trust, now()).map(|_| ())
            } else {
                cms::verify_detached(&msg, b"payload", trust, now()).map(|_| ())
            };
            // Whatever a mutation does, a truncated message never verifies.
            if truncated {
                prop_assert!(r.is_err());
            }
        }
    }
}
