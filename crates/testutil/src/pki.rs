//! A throw-away certificate authority made with `openssl` (Debian's `openssl` package), for
//! tests of TLS between the agents and etcd. Keys are P-256; every certificate is valid for a
//! day, for both server and client authentication, with IP subject alternative names.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA in a temporary directory.
#[derive(Debug)]
pub struct TestCa {
    dir: tempfile::TempDir,
    name: String,
}

/// A certificate and its key, signed by a [`TestCa`].
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (package openssl): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    /// A new CA named `name` (its subject's CN).
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::tempdir().expect("tempdir");
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        TestCa {
            dir,
            name: name.to_string(),
        }
    }

    /// The CA certificate (what clients and servers trust).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Issues `<cn>.pem` / `<cn>.key` for `cn`, valid for the addresses `ips`.
    pub fn issue(&self, cn: &str, ips: &[IpAddr]) -> Issued {
        let d = self.dir.path();
        let mut san: Vec<String> = ips.iter().map(|ip| format!("IP:{ip}")).collect();
        san.push(format!("DNS:{cn}"));
        let ext = format!(
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth,clientAuth\n\
             subjectAltName={}\n",
            san.join(",")
        );
        std::fs::write(d.join(format!("{cn}.ext")), ext).expect("write extensions");
        let (key, csr, cert, extf) = (
            format!("{cn}.key"),
            format!("{cn}.csr"),
            format!("{cn}.pem"),
            format!("{cn}.ext"),
        );
        openssl(
            d,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={cn}/O={}", self.name),
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &format!("{}", 1000 + d.read_dir().map(|r| r.count()).unwrap_or(0)),
                "-days",
                "1",
                "-out",
                &cert,
                "-extfile",
                &extf,
            ],
        );
        Issued {
            cert: d.join(cert),
            key: d.join(key),
        }
    }
}
