//! `keyward bench x509`: the issuing CA's CRL and OCSP, each beside OpenSSL doing the same in the
//! same run — a CRL of N revoked certificates (`openssl ca -gencrl` from an index of the same
//! size) and OCSP answers per second over HTTP (`openssl ocsp` as a responder on the same index),
//! both with an ECDSA P-256 CA key.

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Args;
use keyward_ca::SoftwareKey;
use keyward_ca::ocsp::{Request, Status};
use keyward_ca::x509::{Name, Reason, RevokedEntry, SubjectKey, Template, X509Ca};
use keyward_crypto::{Curve, EcKey};

#[derive(Args)]
pub struct X509Args {
    /// Revoked certificates on the CRL.
    #[arg(long, default_value_t = 1_000_000)]
    revoked: usize,
    /// Seconds of OCSP load per responder.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// OCSP clients at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Certificates recorded in the server's database before its responder is measured.
    #[arg(long, default_value_t = 2000)]
    recorded: usize,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn serial(i: usize) -> Vec<u8> {
    let mut s = vec![0x40u8; 16];
    s[8..].copy_from_slice(&(i as u64).to_be_bytes());
    s
}

fn openssl(args: &[&str], dir: &Path) -> anyhow::Result<()> {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl")?;
    ensure!(
        o.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(())
}

pub fn run(a: &X509Args) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("keyward-bench-x509-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(a, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(a: &X509Args, dir: &Path) -> anyhow::Result<()> {
    // One CA key for both: ours signs with it, OpenSSL reads it as PEM.
    let key = EcKey::generate(Curve::Secp256r1)?;
    let t = now();
    std::fs::write(dir.join("ca.key"), sec1_pem(&key).as_bytes())?;
    let mut ca = X509Ca::self_signed(
        Box::new(SoftwareKey::new(EcKey::from_private(
            Curve::Secp256r1,
            key.private_bytes(),
        )?)),
        &Name::common_name("Bench CA"),
        t - 60,
        t + 86_400 * 365,
    )?;
    std::fs::write(
        dir.join("ca.pem"),
        keyward_server::x509_ca::pem(&ca.certificate),
    )?;

    // CRL of N entries.
    let entries: Vec<RevokedEntry> = (0..a.revoked)
        .map(|i| RevokedEntry {
            serial: serial(i),
            revoked_at: t - 3600,
            reason: Reason::KeyCompromise,
        })
        .collect();
    let start = Instant::now();
    let crl = ca.crl(&entries, t, t + 86_400, 1)?;
    let ours = start.elapsed().as_secs_f64();
    std::fs::write(dir.join("ours.crl"), &crl)?;
    openssl(
        &[
            "crl", "-inform", "DER", "-in", "ours.crl", "-CAfile", "ca.pem", "-noout",
        ],
        dir,
    )
    .context("OpenSSL checks our CRL")?;

    let mut index = std::io::BufWriter::new(std::fs::File::create(dir.join("index.txt"))?);
    for i in 0..a.revoked {
        writeln!(
            index,
            "R\t301231235959Z\t250101000000Z,keyCompromise\t{}\tunknown\t/CN=device{i}",
            hex::encode_upper(serial(i))
        )?;
    }
    drop(index);
    std::fs::write(dir.join("index.txt.attr"), "unique_subject = no\n")?;
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = bench\n[bench]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha256\ndefault_crl_days = 1\ncrl_extensions = ext\n[ext]\nauthorityKeyIdentifier = keyid\n",
    )?;
    std::fs::write(dir.join("crlnumber"), "01\n")?;
    let start = Instant::now();
    openssl(
        &[
            "ca",
            "-config",
            "ca.cnf",
            "-gencrl",
            "-keyfile",
            "ca.key",
            "-cert",
            "ca.pem",
            "-out",
            "openssl.crl",
        ],
        dir,
    )?;
    let peer = start.elapsed().as_secs_f64();
    println!(
        "CRL with {} revoked certificates: keyward {:.2} s ({} bytes), openssl ca -gencrl {:.2} s — {:.1}x",
        a.revoked,
        ours,
        crl.len(),
        peer,
        peer / ours
    );

    // OCSP over HTTP: a certificate issued by the CA, asked about again and again.
    let leaf_key = EcKey::generate(Curve::Secp256r1)?;
    let leaf = ca.issue(
        &Template::end_entity(Name::common_name("leaf"), t - 60, t + 86_400),
        &SubjectKey::Ec {
            curve: Curve::Secp256r1,
            point: leaf_key.public_point().to_vec(),
        },
    )?;
    std::fs::write(
        dir.join("leaf.pem"),
        keyward_server::x509_ca::pem(&leaf.der),
    )?;
    openssl(
        &[
            "ocsp",
            "-issuer",
            "ca.pem",
            "-cert",
            "leaf.pem",
            "-no_nonce",
            "-reqout",
            "req.der",
        ],
        dir,
    )?;
    let request = std::fs::read(dir.join("req.der"))?;
    let parsed = Request::parse(&request)?;
    ensure!(ca.issued(&parsed.ids[0]), "the request names our CA");

    let rt = tokio::runtime::Runtime::new()?;
    let ca = std::sync::Arc::new(std::sync::Mutex::new(ca));
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let our_url = format!("http://{}/ocsp", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/ocsp",
        axum::routing::post(move |body: axum::body::Bytes| {
            let ca = ca.clone();
            async move {
                let Ok(req) = Request::parse(&body) else {
                    return keyward_ca::ocsp::refused(1);
                };
                let t = now();
                let Ok(mut ca) = ca.lock() else {
                    return keyward_ca::ocsp::refused(2);
                };
                ca.ocsp_response(&req, |_| Status::Good, t, t + 3600)
                    .unwrap_or_else(|_| keyward_ca::ocsp::refused(2))
            }
        }),
    );
    let server = rt.spawn(async move { axum::serve(listener, app).await });
    let ours = rt.block_on(load(&our_url, &request, a))?;
    server.abort();
    let served = server_responder(&rt, dir, a)?;

    // OpenSSL's responder on the same CA, index and request.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    // `-multi` forks workers: the responder gets a process group of its own, stopped as a whole.
    let port_arg = port.to_string();
    let mut peer_proc = Command::new("openssl")
        .args([
            "ocsp",
            "-index",
            "index.txt",
            "-port",
            &port_arg,
            "-rsigner",
            "ca.pem",
        ])
        .args([
            "-rkey", "ca.key", "-CA", "ca.pem", "-nmin", "60", "-multi", "2",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let stop = |p: &mut std::process::Child| {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", p.id())])
            .status();
        let _ = p.kill();
        let _ = p.wait();
    };
    let peer_url = format!("http://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            stop(&mut peer_proc);
            bail!("openssl ocsp did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let peer = rt.block_on(load(&peer_url, &request, a));
    stop(&mut peer_proc);
    let peer = peer?;
    println!(
        "OCSP answers/s over HTTP ({} clients): keyward {ours:.0}, openssl ocsp responder (-multi 2) {peer:.0} — {:.2}x",
        a.concurrency,
        ours / peer
    );
    println!(
        "OCSP answers/s from keyward server's /ocsp (status looked up in SQLite among {} certificates): {served:.0} — {:.2}x openssl's responder",
        a.recorded,
        served / peer
    );
    Ok(())
}

/// The server's own responder (`keyward_server::ocsp`): each answer looks the status up in
/// its database (SQLite, `recorded` certificates) and is signed by its issuing CA.
fn server_responder(rt: &tokio::runtime::Runtime, dir: &Path, a: &X509Args) -> anyhow::Result<f64> {
    use keyward_server::db::CertificateRow;
    let data = dir.join("server");
    let (_, provisioner) = rt
        .block_on(keyward_server::services(keyward_server::Settings {
            data_dir: &data,
            db_url: None,
            unlock: keyward_ca::ca_set::Unlock::default(),
            naming: keyward_server::produce::Naming {
                country: "ZZ".into(),
                mnemonic: "KWD".into(),
            },
            validity_days: 365,
            db_connections: 8,
            profiles: Default::default(),
            crl_url: None,
            ocsp_url: None,
            external_roots: Vec::new(),
        }))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let t = now();
    let key = EcKey::generate(Curve::Secp256r1)?;
    let subject = SubjectKey::Ec {
        curve: Curve::Secp256r1,
        point: key.public_point().to_vec(),
    };
    let mut last = None;
    for i in 0..a.recorded.max(1) {
        let template =
            Template::end_entity(Name::common_name(&format!("leaf {i}")), t - 60, t + 86_400);
        let issued = provisioner
            .ca
            .lock()
            .map_err(|_| anyhow::anyhow!("CA lock"))?
            .issue(&template, &subject)?;
        let serial = hex::encode_upper(&issued.serial);
        rt.block_on(provisioner.db.record_pending_certificate(&CertificateRow {
            serial: serial.clone(),
            device_id: "ZZKWD00001".into(),
            profile: "tls-client".into(),
            key_ref: 1,
            state: "pending".into(),
            der: hex::encode(&issued.der),
            attestation: String::new(),
            not_before: template.not_before,
            not_after: template.not_after,
            created_at: 0,
            revoked_at: None,
            revocation_reason: None,
        }))?;
        rt.block_on(provisioner.db.activate_certificate(&serial, None, &[]))?;
        last = Some(issued.der);
    }
    let leaf = last.context("no certificate")?;
    std::fs::write(data.join("leaf.pem"), keyward_server::x509_ca::pem(&leaf))?;
    openssl(
        &[
            "ocsp",
            "-issuer",
            "x509/issuing.pem",
            "-cert",
            "leaf.pem",
            "-no_nonce",
            "-reqout",
            "req.der",
        ],
        &data,
    )?;
    let request = std::fs::read(data.join("req.der"))?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!(
        "http://{}{}",
        listener.local_addr()?,
        keyward_server::ocsp::PATH
    );
    let app = keyward_server::ocsp::router(std::sync::Arc::new(provisioner));
    let server = rt.spawn(async move { axum::serve(listener, app).await });
    // One answer checked by OpenSSL first: signed by the issuing CA, and "good".
    let checked = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(&url)
            .header("Content-Type", "application/ocsp-request")
            .body(request.clone())
            .send()
            .await?;
        std::fs::write(data.join("resp.der"), r.bytes().await?)?;
        let o = Command::new("openssl")
            .args(["ocsp", "-respin", "resp.der", "-issuer", "x509/issuing.pem"])
            .args(["-cert", "leaf.pem", "-CAfile", "x509/root.pem"])
            .current_dir(&data)
            .output()?;
        let text = String::from_utf8_lossy(&o.stdout);
        ensure!(
            text.contains("leaf.pem: good"),
            "the server's answer: {text}"
        );
        Ok::<(), anyhow::Error>(())
    });
    let rate = checked.and_then(|()| rt.block_on(load(&url, &request, a)));
    server.abort();
    rate
}

/// The CA key as an SEC1 `EC PRIVATE KEY` PEM, for OpenSSL (a benchmark key only).
fn sec1_pem(key: &EcKey) -> String {
    let sec1 = zeroize::Zeroizing::new(keyward_ca::der::ec_private_key(key));
    keyward_ca::pem::encode("EC PRIVATE KEY", &sec1)
}

/// OCSP requests per second against `url` from `a.concurrency` clients for `a.seconds`.
async fn load(url: &str, request: &[u8], a: &X509Args) -> anyhow::Result<f64> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(a.seconds);
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency {
        let (client, url, body) = (client.clone(), url.to_string(), request.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let r = client
                    .post(&url)
                    .header("Content-Type", "application/ocsp-request")
                    .body(body.clone())
                    .send()
                    .await?;
                let bytes = r.bytes().await?;
                // A successful response: OCSPResponseStatus 0 after the outer SEQUENCE header.
                anyhow::ensure!(
                    bytes.windows(3).take(6).any(|w| w == [0x0A, 0x01, 0x00]),
                    "OCSP refused"
                );
                n += 1;
            }
            Ok::<u64, anyhow::Error>(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}
