//! The bulk figures: 1 GiB through the Latchkey channel, an `ssh -L` tunnel and plain
//! TCP, the crypto limit, and the CPU both ends of the channel spend per GiB.

use super::*;

/// Runs the bulk section; returns (`tunnel_mib_s`, `crypto_limit_mib_s`).
///
/// `client_cpu_s_per_gib` is the phone library's cost of a bulk pull through its public
/// API: the CPU of the client runtime's threads (`lk-client`: the `Connection`'s HTTP/2
/// driver and `NoiseStream`, and the loop reading the body with `Connection::request`)
/// per GiB received, median of the runs. `gateway_cpu_s_per_gib` is the same for the
/// gateway runtime's threads.
pub(super) fn run(
    plan: &Plan,
    quick: bool,
    gw_rt: &Runtime,
    cl_rt: &Runtime,
    g: &InProcess,
    device: &Device,
    t: &mut Table,
) -> anyhow::Result<(f64, f64)> {
    println!(
        "\nbulk: {} MiB per transfer, median of {}",
        plan.bulk >> 20,
        plan.repeats
    );
    let bulk_listener = gw_rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let bulk_addr = bulk_listener.local_addr()?;
    gw_rt.spawn(bulk_server(bulk_listener, g.gw.clone()));
    let sender = tcp_sender()?;
    let ssh = match ssh_tunnel(sender) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("warning: no SSH reference: {e:#}");
            None
        }
    };
    let (mut noise, mut sshv, mut tcp) = (Vec::new(), Vec::new(), Vec::new());
    let (mut gw_cpu, mut cl_cpu) = (Vec::new(), Vec::new());
    let gib = plan.bulk as f64 / (1u64 << 30) as f64;
    for _ in 0..plan.repeats {
        let conn = cl_rt.block_on(device.connect(bulk_addr))?;
        let (gw0, cl0) = (threads_cpu("lk-gw"), threads_cpu("lk-client"));
        noise.push(cl_rt.block_on(pull_channel(&conn, plan.bulk))?);
        gw_cpu.push((threads_cpu("lk-gw") - gw0).as_secs_f64() / gib);
        cl_cpu.push((threads_cpu("lk-client") - cl0).as_secs_f64() / gib);
        drop(conn);
        if let Some(s) = &ssh {
            sshv.push(pull_tcp(s.local, plan.bulk)?);
        }
        tcp.push(pull_tcp(sender, plan.bulk)?);
    }
    drop(ssh);
    let resolver_bytes = if quick { 256 << 20 } else { 2 << 30 };
    let ring = resolver_speed(ring_resolver, resolver_bytes);
    let rust = resolver_speed(default_resolver, resolver_bytes);
    println!(
        "  snow resolver, seal+open per CPU-second: ring {ring:.0} MiB/s, default {rust:.0} MiB/s (ring x{:.2})",
        ring / rust
    );
    let crypto = crypto_limit(if quick { 1 } else { 3 })?;
    let tunnel = median(noise.clone());
    t.add(
        "tunnel_mib_s",
        tunnel,
        format!("Latchkey channel, runs {noise:.0?}"),
    );
    t.add(
        "ssh_tunnel_mib_s",
        median(sshv.clone()),
        format!("ssh -L chacha20-poly1305, runs {sshv:.0?}"),
    );
    t.add(
        "tcp_mib_s",
        median(tcp.clone()),
        format!("plain loopback, runs {tcp:.0?}"),
    );
    t.add(
        "crypto_limit_mib_s",
        crypto,
        "openssl speed, 1 core, 16 KiB",
    );
    t.add(
        "gateway_cpu_s_per_gib",
        median(gw_cpu.clone()),
        format!("gateway threads' CPU per GiB sent, runs {gw_cpu:.2?}"),
    );
    t.add(
        "client_cpu_s_per_gib",
        median(cl_cpu.clone()),
        format!("phone library (latchkey-client Connection) CPU per GiB pulled, runs {cl_cpu:.2?}"),
    );
    Ok((tunnel, crypto))
}
