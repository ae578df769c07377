//! The tunnel figures' peers: a bulk HTTP/2 server behind the channel, plain TCP, an
//! OpenSSH `ssh -L` tunnel, and the crypto limit measured with `openssl speed` and snow.

use super::*;

/// Serves `/bench/bulk/{bytes}` over the real channel (`listener::serve_channel`) after a
/// real session handshake: the gateway's Noise + HTTP/2 stack with a large body.
pub(super) async fn bulk_server(listener: TcpListener, gw: Arc<Gateway>) {
    let router = axum::Router::new().route("/bench/bulk/{bytes}", get(bulk));
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let (gw, router) = (gw.clone(), router.clone());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let started = Instant::now();
            let first = read_frame(&mut stream, MAX_HANDSHAKE_FRAME).await.ok()?;
            let (_, m1) = split_type(&first).ok()?;
            let responder = SessionResponder::read_hello(&gw.keys, m1, &mut OsRng).ok()?;
            let key = responder.remote_key();
            let (_, psk) = gw.store.device_by_key(&key).ok()??;
            let hello = ServerHello {
                device_id: String::new(),
                gateway_name: String::new(),
                addresses: vec![],
                rekey_after_secs: latchkey_gateway::config::DEFAULT_REKEY_AFTER_SECS,
            };
            let (m2, session) = responder.accept(&psk, &hello, started.elapsed()).ok()?;
            write_frame(&mut stream, &m2).await.ok()?;
            let noise = NoiseStream::new(stream, session, started);
            latchkey_gateway::listener::serve_channel(noise, router, None)
                .await
                .ok()
        });
    }
}

pub(super) const BULK_CHUNK: usize = 256 << 10;

pub(super) async fn bulk(UrlPath(bytes): UrlPath<u64>) -> Body {
    let chunk = Bytes::from(vec![0x5a; BULK_CHUNK]);
    let full = bytes / BULK_CHUNK as u64;
    let tail = (bytes % BULK_CHUNK as u64) as usize;
    let chunks = (0..full)
        .map(move |_| chunk.clone())
        .chain((tail > 0).then(|| Bytes::from(vec![0x5a; tail])));
    Body::from_stream(futures_util::stream::iter(chunks).map(Ok::<_, Infallible>))
}

/// MiB/s from the first body byte to the end, like the SSH recipe's bench.py.
pub(super) async fn pull_channel(conn: &Connection, bytes: u64) -> anyhow::Result<f64> {
    let response = conn
        .request(Method::GET, &format!("/bench/bulk/{bytes}"))
        .await?;
    anyhow::ensure!(response.status() == 200, "bulk: {}", response.status());
    let mut body = response.into_body();
    let (mut got, mut first) = (0u64, None);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            first.get_or_insert_with(Instant::now);
            got += data.len() as u64;
        }
    }
    anyhow::ensure!(got == bytes, "bulk: got {got} of {bytes} bytes");
    let secs = first.map_or(f64::NAN, |t| t.elapsed().as_secs_f64());
    Ok(bytes as f64 / secs / (1 << 20) as f64)
}

/// A plain TCP sender: reads an 8-byte count, writes that many bytes, closes.
pub(super) fn tcp_sender() -> anyhow::Result<SocketAddr> {
    let listener = StdListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        // The reference's sending side sits with the gateway.
        pin_self(0);
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut stream = stream;
                let mut n = [0u8; 8];
                stream.read_exact(&mut n)?;
                let mut left = u64::from_be_bytes(n);
                let chunk = vec![0x5au8; 1 << 20];
                while left > 0 {
                    let k = left.min(chunk.len() as u64) as usize;
                    stream.write_all(&chunk[..k])?;
                    left -= k as u64;
                }
                stream.shutdown(std::net::Shutdown::Write)
            });
        }
    });
    Ok(addr)
}

pub(super) fn pull_tcp(addr: SocketAddr, bytes: u64) -> anyhow::Result<f64> {
    let mut stream = StdStream::connect(addr)?;
    stream.write_all(&bytes.to_be_bytes())?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut got, mut first) = (0u64, None);
    loop {
        let k = stream.read(&mut buf)?;
        if k == 0 {
            break;
        }
        first.get_or_insert_with(Instant::now);
        got += k as u64;
    }
    anyhow::ensure!(got == bytes, "tcp: got {got} of {bytes} bytes");
    let secs = first.map_or(f64::NAN, |t| t.elapsed().as_secs_f64());
    Ok(bytes as f64 / secs / (1 << 20) as f64)
}

pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// sshd on 127.0.0.1 with fresh keys, and `ssh -L` with chacha20-poly1305 to `target`.
/// Returns the tunnel's local address and the two children (killed on drop).
pub(super) struct SshTunnel {
    pub(super) local: SocketAddr,
    pub(super) children: Vec<Child>,
    pub(super) _dir: tempfile::TempDir,
}

impl Drop for SshTunnel {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(super) fn ssh_tunnel(target: SocketAddr) -> anyhow::Result<SshTunnel> {
    let dir = tempfile::tempdir()?;
    let d = dir.path().to_path_buf();
    let d = d.as_path();
    for key in ["host_ed25519", "client_ed25519"] {
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(d.join(key))
            .status()
            .context("running ssh-keygen (apt-get install openssh-client)")?;
        anyhow::ensure!(ok.success(), "ssh-keygen failed");
    }
    std::fs::copy(d.join("client_ed25519.pub"), d.join("authorized_keys"))?;
    let port = free_port()?;
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_ed25519\nPidFile {dir}/sshd.pid\n\
         AuthorizedKeysFile {dir}/authorized_keys\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
         PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nAllowTcpForwarding yes\n\
         Ciphers chacha20-poly1305@openssh.com\n",
        dir = d.display()
    );
    std::fs::write(d.join("sshd_config"), config)?;
    let _ = std::fs::create_dir_all("/run/sshd");
    let mut children = Vec::new();
    let sshd = pin_cmd("/usr/sbin/sshd", 0)
        .args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("sshd.log"))?)
        .spawn()
        .context("starting /usr/sbin/sshd (apt-get install openssh-server)")?;
    children.push(sshd);
    let local_port = free_port()?;
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let mut tunnel = SshTunnel {
        local: SocketAddr::from(([127, 0, 0, 1], local_port)),
        children,
        _dir: dir,
    };
    // Wait for sshd to listen.
    let deadline = Instant::now() + Duration::from_secs(10);
    while StdStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "sshd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ssh = pin_cmd("ssh", 1)
        .args(["-F", "/dev/null", "-p", &port.to_string(), "-i"])
        .arg(d.join("client_ed25519"))
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "Compression=no",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}/known_hosts", d.display()))
        .args(["-c", "chacha20-poly1305@openssh.com", "-N", "-L"])
        .arg(format!("127.0.0.1:{local_port}:{target}"))
        .arg(format!("{user}@127.0.0.1"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("ssh.log"))?)
        .spawn()
        .context("starting ssh")?;
    tunnel.children.push(ssh);
    // Wait until the forward carries a zero-byte request end to end.
    loop {
        if let Ok(mut s) = StdStream::connect(tunnel.local)
            && s.write_all(&0u64.to_be_bytes()).is_ok()
            && s.read(&mut [0u8; 1]).is_ok_and(|n| n == 0)
        {
            break;
        }
        if Instant::now() > deadline || tunnel.children[1].try_wait()?.is_some() {
            let log = std::fs::read_to_string(d.join("ssh.log")).unwrap_or_default();
            let slog = std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
            bail!("ssh -L did not come up\nssh: {log}\nsshd: {slog}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(tunnel)
}

/// `openssl speed -evp chacha20-poly1305`, one core, 16 KiB blocks, in MiB/s.
pub(super) fn crypto_limit(secs: u32) -> anyhow::Result<f64> {
    let out = pin_cmd("openssl", 0)
        .args([
            "speed",
            "-mr",
            "-evp",
            "chacha20-poly1305",
            "-bytes",
            "16384",
        ])
        .args(["-seconds", &secs.to_string()])
        .stderr(Stdio::null())
        .output()
        .context("running openssl speed")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("+F:"))
        .with_context(|| format!("no +F line in openssl output: {text}"))?;
    let bytes_per_s: f64 = line
        .rsplit(':')
        .next()
        .and_then(|v| v.trim().parse().ok())
        .context("unparsable openssl speed line")?;
    Ok(bytes_per_s / (1 << 20) as f64)
}

/// Seal+open throughput of snow transport messages (64 KiB, both ends with the
/// resolver `make` gives), MiB/s: how snow's resolver is chosen.
pub(super) fn resolver_speed(
    make: fn() -> snow::resolvers::BoxedCryptoResolver,
    bytes: usize,
) -> f64 {
    let params: snow::params::NoiseParams = "Noise_NN_25519_ChaChaPoly_BLAKE2s".parse().unwrap();
    let mut init = snow::Builder::with_resolver(params.clone(), make())
        .build_initiator()
        .unwrap();
    let mut resp = snow::Builder::with_resolver(params, make())
        .build_responder()
        .unwrap();
    let (mut m, mut p) = (vec![0u8; 65535], vec![0u8; 65535]);
    let n = init.write_message(&[], &mut m).unwrap();
    resp.read_message(&m[..n], &mut p).unwrap();
    let n = resp.write_message(&[], &mut m).unwrap();
    init.read_message(&m[..n], &mut p).unwrap();
    let mut a = init.into_transport_mode().unwrap();
    let mut b = resp.into_transport_mode().unwrap();
    let plain = vec![0x5au8; 65519];
    // This thread's CPU time, not wall time: other processes may share the cores.
    let started = thread_cpu();
    let mut done = 0;
    while done < bytes {
        let n = a.write_message(&plain, &mut m).unwrap();
        b.read_message(&m[..n], &mut p).unwrap();
        done += plain.len();
    }
    done as f64 / (thread_cpu() - started).as_secs_f64() / (1 << 20) as f64
}

pub(super) fn ring_resolver() -> snow::resolvers::BoxedCryptoResolver {
    use snow::resolvers::{DefaultResolver, FallbackResolver, RingResolver};
    Box::new(FallbackResolver::new(
        Box::new(RingResolver),
        Box::new(DefaultResolver),
    ))
}

/// snow's pure-Rust ciphers and hashes (ring only supplies the random numbers, which
/// this build's default resolver lacks).
pub(super) fn default_resolver() -> snow::resolvers::BoxedCryptoResolver {
    use snow::resolvers::{DefaultResolver, FallbackResolver, RingResolver};
    Box::new(FallbackResolver::new(
        Box::new(DefaultResolver),
        Box::new(RingResolver),
    ))
}
