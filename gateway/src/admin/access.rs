//! Where the admin socket is, and who may use it.
//!
//! By default the socket is `admin.sock` in the state directory (0700, so only its owner
//! reaches it). The packaged service sets `LATCHKEY_SOCKET=/run/latchkey/admin.sock`: the
//! socket is 0660 to the service's group (`latchkey`) in a 0750 runtime directory, so an
//! owner added to that group runs the CLI without root. The daemon admits a peer whose
//! uid owns the state directory, root, or a member of the socket's group (its primary
//! group, or a supplementary one listed in /etc/group); the kernel's permission check on
//! the socket file stands in front of that.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::socket::SOCKET_FILE;

/// The environment variable that places the socket (daemon and CLI alike).
pub const SOCKET_ENV: &str = "LATCHKEY_SOCKET";
/// Where the packaged service puts its socket.
pub const SERVICE_SOCKET: &str = "/run/latchkey/admin.sock";

/// The socket the daemon binds for `state_dir`.
pub fn bind_path(state_dir: &Path) -> PathBuf {
    match std::env::var_os(SOCKET_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => state_dir.join(SOCKET_FILE),
    }
}

/// The packaged service's state directory.
pub const SERVICE_STATE: &str = "/var/lib/latchkey";

/// The state directory an admin command uses when none was given: the user's own
/// (`own`) if it exists, else the packaged service's when its socket is there.
pub fn cli_default_state(own: PathBuf) -> PathBuf {
    if std::fs::symlink_metadata(&own).is_err() && present(Path::new(SERVICE_SOCKET)) {
        PathBuf::from(SERVICE_STATE)
    } else {
        own
    }
}

/// The socket the CLI connects to: `$LATCHKEY_SOCKET`, else the state directory's, else
/// (for the service's state directory, whose socket is in /run) the packaged service's.
pub fn connect_path(state_dir: &Path) -> PathBuf {
    let own = bind_path(state_dir);
    if std::env::var_os(SOCKET_ENV).is_some_and(|p| !p.is_empty())
        || std::fs::symlink_metadata(&own).is_ok()
    {
        return own;
    }
    let service = PathBuf::from(SERVICE_SOCKET);
    if state_dir == Path::new(SERVICE_STATE) && present(&service) {
        service
    } else {
        own
    }
}

/// Whether something is at `path`, counting a directory this user may not search as
/// "something there" (the CLI then says it may not use it, not that nothing runs).
fn present(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::PermissionDenied,
    }
}

/// The one-line explanation for a socket this user may not open.
pub fn denied(path: &Path) -> String {
    format!(
        "you may not use the gateway's admin socket {}: add yourself to the latchkey group (sudo adduser $USER latchkey, then log in again) or use sudo",
        path.display()
    )
}

/// Who may send admin requests, read once when the daemon starts.
#[derive(Debug, Clone)]
pub struct Allowed {
    /// The state directory's owner.
    pub owner: Option<u32>,
    /// The socket file's group.
    pub group: Option<u32>,
}

impl Allowed {
    /// Reads the owner of `state_dir` and the group of `socket`.
    pub fn read(state_dir: &Path, socket: &Path) -> Self {
        Self {
            owner: std::fs::metadata(state_dir).map(|m| m.uid()).ok(),
            group: std::fs::metadata(socket).map(|m| m.gid()).ok(),
        }
    }

    /// Whether a peer with these credentials is admitted.
    pub fn admits(&self, uid: u32, gid: u32) -> bool {
        if uid == 0 || Some(uid) == self.owner {
            return true;
        }
        match self.group {
            // Group 0 is root's: being in it is not being given this socket.
            Some(g) if g != 0 => gid == g || in_group_file(uid, g),
            _ => false,
        }
    }
}

/// Whether the user with `uid` is listed as a member of group `gid` in /etc/group.
fn in_group_file(uid: u32, gid: u32) -> bool {
    let (Ok(passwd), Ok(group)) = (
        std::fs::read_to_string("/etc/passwd"),
        std::fs::read_to_string("/etc/group"),
    ) else {
        return false;
    };
    member(&passwd, &group, uid, gid)
}

/// `member` over the two files' text: the name of `uid` is among the members of `gid`.
fn member(passwd: &str, group: &str, uid: u32, gid: u32) -> bool {
    let uid_s = uid.to_string();
    let gid_s = gid.to_string();
    let Some(name) = passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid_s).then_some(name)
    }) else {
        return false;
    };
    group.lines().any(|l| {
        let f: Vec<&str> = l.split(':').collect();
        matches!(f.as_slice(), [_, _, g, members] if *g == gid_s
            && members.split(',').any(|m| m.trim() == name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\nann:x:1000:1000::/home/ann:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\nlatchkey:x:998:997::/var/lib/latchkey:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nann:x:1000:\nbob:x:1001:\nlatchkey:x:997:ann,carl\n";

    #[test]
    fn group_members_are_read_from_the_group_file() {
        assert!(member(PASSWD, GROUP, 1000, 997));
        assert!(!member(PASSWD, GROUP, 1001, 997), "bob is not a member");
        assert!(
            !member(PASSWD, GROUP, 4242, 997),
            "an unknown uid is nobody"
        );
        assert!(!member(PASSWD, GROUP, 1000, 1001));
    }

    #[test]
    fn owner_root_and_the_socket_group_are_admitted_others_not() {
        let a = Allowed {
            owner: Some(998),
            group: Some(997),
        };
        assert!(a.admits(998, 998));
        assert!(a.admits(0, 0));
        assert!(a.admits(5555, 997), "primary group");
        assert!(!a.admits(5555, 5555));
        let root_group = Allowed {
            owner: Some(998),
            group: Some(0),
        };
        assert!(!root_group.admits(5555, 0), "root's group grants nothing");
    }
}
