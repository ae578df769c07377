//! `latchkey remote …`: the owner's remote-access commands, rendered from the typed
//! reports of `portmap::report` (the gateway sends them as JSON over the admin socket).
//! Every text a router controls (descriptions, errors, service names) is escaped before it
//! reaches the terminal.

use std::path::Path;

use clap::Subcommand;
use latchkey_gateway::admin::socket::AdminRequest;
use latchkey_gateway::portmap::report::{
    Closed, Mapping, Plan, PlannedRequest, Removal, RouterAudit, Status,
};
use latchkey_pairing::text::{cell, escape};

use super::{ask, at};

#[derive(Subcommand, Debug)]
pub enum RemoteCommand {
    /// What the router reports, the approval, the mappings, and a plain diagnosis.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Ask the router to let phones in: shows exactly what will be asked, then asks you.
    /// Without --ipv4 or --ipv6, both.
    Open {
        /// An IPv4 port mapping (UPnP IGD AddPortMapping).
        #[arg(long)]
        ipv4: bool,
        /// An IPv6 firewall pinhole (IGDv2 WANIPv6FirewallControl).
        #[arg(long)]
        ipv6: bool,
        /// Lease asked of the router, renewed at half-life while approved (never infinite).
        #[arg(long, default_value = "1h", value_parser = parse_lease)]
        lease: u32,
        /// Approve without asking (for scripts: read the plan first).
        #[arg(long)]
        yes: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Withdraw the approval: delete every mapping and pinhole, and check they are gone.
    Close {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Every port mapping on the router, and whose it is (Latchkey, a camera, unknown).
    Audit {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Delete the mapping with this index from the router.
        #[arg(long, value_name = "N")]
        remove: Option<u32>,
    },
}

fn parse_lease(s: &str) -> Result<u32, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    latchkey_gateway::portmap::check_lease(d)
}
/// Runs one `latchkey remote` command against the running gateway.
pub async fn run(state: &Path, command: RemoteCommand) -> anyhow::Result<()> {
    match command {
        RemoteCommand::Status { json } => {
            let r: Status = ask(state, &AdminRequest::RemoteStatus, json).await?;
            if !json {
                print_status(&r);
            }
        }
        RemoteCommand::Open {
            ipv4,
            ipv6,
            lease,
            yes,
            json,
        } => {
            let (ipv4, ipv6) = if ipv4 || ipv6 {
                (ipv4, ipv6)
            } else {
                (true, true)
            };
            let plan_req = AdminRequest::RemotePlan {
                ipv4,
                ipv6,
                lease_secs: lease,
            };
            let plan: Plan = ask(state, &plan_req, false).await?;
            print_plan(&plan);
            if plan.requests.is_empty() {
                anyhow::bail!("nothing can be asked of the router (see the notes above)");
            }
            if !yes
                && !confirm(
                    "Approve? Phones you paired will reach this gateway from the internet. [y/N] ",
                )?
            {
                anyhow::bail!("not approved: nothing was asked of the router");
            }
            let open = AdminRequest::RemoteOpen {
                ipv4: ipv4 && plan.maps_ipv4(),
                ipv6: ipv6 && plan.opens_ipv6(),
                lease_secs: lease,
            };
            let r: Status = ask(state, &open, json).await?;
            if !json {
                print_status(&r);
            }
        }
        RemoteCommand::Close { json } => {
            let r: Closed = ask(state, &AdminRequest::RemoteClose, json).await?;
            if !json {
                print_closed(&r);
            }
        }
        RemoteCommand::Audit { json, remove } => {
            let r: RouterAudit = ask(state, &AdminRequest::RemoteAudit { remove }, json).await?;
            if !json {
                print_audit(&r);
            }
        }
    }
    Ok(())
}

/// Asks on the terminal; refuses (rather than assume) when there is none.
fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "remote open needs the owner's confirmation and there is no terminal to ask on: read the plan above and run it again with --yes"
        );
    }
    print!("{question}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// `Some(x)` as text, `None` as `-`.
fn or_dash<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn print_plan(plan: &Plan) {
    println!("Latchkey will ask the router:");
    for r in &plan.requests {
        match r {
            PlannedRequest::AddPortMapping {
                router,
                protocol,
                external_port,
                external_port_note,
                internal,
                lease_secs,
                renewal,
                ..
            } => println!(
                "  AddPortMapping {} external port {external_port} ({external_port_note}) -> {internal}  lease {lease_secs} s, renewed {renewal}, at the router {router}",
                escape(protocol)
            ),
            PlannedRequest::AddPinhole {
                router,
                protocol,
                remote,
                internal,
                lease_secs,
                renewal,
                fallback,
            } => {
                println!(
                    "  AddPinhole {protocol} from {remote} -> {internal}  lease {lease_secs} s, renewed {renewal}{}",
                    router.map_or_else(String::new, |a| format!(", at the router {a}"))
                );
                println!("    or {}", escape(fallback));
            }
        }
    }
    for p in &plan.problems {
        println!("  note: {}", escape(p));
    }
}

fn print_closed(r: &Closed) {
    for (kind, removal) in [("ipv4", &r.ipv4), ("ipv6", &r.ipv6)] {
        match removal {
            None => {}
            Some(Removal {
                verified_gone: Some(true),
                ..
            }) => println!("{kind}: removed, and the router no longer lists it"),
            Some(Removal { error, .. }) => println!(
                "{kind}: NOT confirmed removed: {}",
                escape(error.as_deref().unwrap_or("the router still lists it"))
            ),
        }
    }
    println!(
        "remote access {}",
        if r.approval_ended {
            "closed"
        } else {
            "was not open"
        }
    );
}

fn print_audit(r: &RouterAudit) {
    if let Some(d) = &r.removed {
        println!("removed: {}", escape(d));
    }
    println!("mappings on the router {}:", r.router);
    println!(
        "{:<4} {:<5} {:<6} {:<22} {:<10} {:<7} DESCRIPTION",
        "N", "PROTO", "EXT", "TO", "OWNER", "LEASE"
    );
    for m in &r.mappings {
        let e = &m.entry;
        println!(
            "{:<4} {:<5} {:<6} {:<22} {:<10} {:<7} {}",
            e.index,
            cell(&e.protocol, 5),
            e.external_port,
            cell(&format!("{}:{}", e.internal_client, e.internal_port), 22),
            match &m.camera {
                Some(c) => format!("camera {}", cell(c, 30)),
                None => serde_json::to_value(&m.owner)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            },
            e.lease_secs,
            escape(&e.description)
        );
    }
    for w in r.mappings.iter().filter_map(|m| m.warning.as_ref()) {
        println!("WARNING: {}", escape(w));
    }
}

fn print_status(r: &Status) {
    match &r.router {
        None => println!(
            "router:        none found ({})",
            escape(r.router_error.as_deref().unwrap_or("-"))
        ),
        Some(router) => println!(
            "router:        {} ({}, {}, IPv6 firewall control: {})",
            router.address,
            escape(&router.igd),
            escape(&router.service),
            if router.ipv6_firewall_control {
                "yes"
            } else {
                "no"
            }
        ),
    }
    println!("external IPv4: {}", or_dash(r.external_ipv4));
    let v6: Vec<String> = r.global_ipv6.iter().map(ToString::to_string).collect();
    println!(
        "global IPv6:   {}",
        if v6.is_empty() {
            "-".to_string()
        } else {
            v6.join(", ")
        }
    );
    match &r.approval {
        None => println!(
            "approval:      none (nothing is mapped; `latchkey remote open` asks you first)"
        ),
        Some(a) => println!(
            "approval:      ipv4 {}, ipv6 {}, lease {} s, since {} by {}",
            a.ipv4,
            a.ipv6,
            a.lease_secs,
            at(a.approved_at),
            escape(&a.approved_by)
        ),
    }
    for m in &r.mappings {
        match m {
            Mapping::Ipv4 {
                protocol,
                external,
                internal,
                lease_secs,
                renewed_at,
                ..
            } => println!(
                "mapping:       ipv4 {protocol} {} -> {internal}, lease {lease_secs} s, renewed {}",
                or_dash(*external),
                at(*renewed_at)
            ),
            Mapping::Ipv6 {
                via,
                protocol,
                external,
                internal,
                lease_secs,
                renewed_at,
                ..
            } => println!(
                "mapping:       ipv6 via {} {protocol} {external} -> {internal}, lease {lease_secs} s, renewed {}",
                via.to_uppercase(),
                at(*renewed_at)
            ),
        }
    }
    for e in [&r.ipv4_error, &r.ipv6_error].into_iter().flatten() {
        println!("problem:       {}", escape(e));
    }
    println!("diagnosis:     {}", escape(&r.diagnosis));
}
