//! The machine and the versions of everything measured, for the report.

use std::path::Path;
use std::process::Command;

/// The machine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// CPUs available to the run.
    pub cores: usize,
    /// Total memory.
    pub memory: String,
    /// Kernel release.
    pub kernel: String,
    /// Distribution and Debian version.
    pub os: String,
    /// Load average (1, 5, 15 min) when the run started.
    pub load_start: String,
    /// Load average when it ended.
    pub load_end: String,
}

/// Versions of everything measured or used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Versions {
    /// `(component, version)` pairs, in display order.
    pub items: Vec<(String, String)>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Value of `key` in a `key: value` (cpuinfo, meminfo) or `KEY=value` (os-release) text.
pub fn field(text: &str, key: &str, sep: char) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(sep)?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// First line of a command's stdout, or `unknown`.
fn cmd(prog: &str, args: &[&str]) -> String {
    Command::new(prog)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The file system holding `path`, from a `mountinfo` text: `(fs type, source)` of the
/// mount with the longest mount point that is a prefix of `path`.
pub fn fs_of(mountinfo: &str, path: &Path) -> Option<(String, String)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let point = pre.split_whitespace().nth(4)?;
            let mut post = post.split_whitespace();
            Some((point, post.next()?, post.next()?))
        })
        .filter(|(point, _, _)| path.starts_with(point))
        .fold(None::<(usize, String, String)>, |best, (point, fs, src)| {
            // a later mount on the same point hides the earlier one
            match &best {
                Some((len, _, _)) if *len > point.len() => best,
                _ => Some((point.len(), fs.to_string(), src.to_string())),
            }
        })
        .map(|(_, fs, src)| (fs, src))
}

/// `fs_of` for this process, as text for the report.
pub fn describe_fs(path: &Path) -> String {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    match fs_of(&info, path) {
        Some((fs, src)) => format!("{} ({fs} on {src})", path.display()),
        None => path.display().to_string(),
    }
}

/// The load average (1, 5, 15 minutes).
pub fn loadavg() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The current time, UTC.
pub fn utc_now() -> String {
    cmd("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
}

/// The machine (the load at the end is filled in by the caller).
pub fn machine() -> Machine {
    let cpuinfo = read("/proc/cpuinfo");
    let meminfo = read("/proc/meminfo");
    let os_release = read("/etc/os-release");
    let memory = field(&meminfo, "MemTotal", ':')
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| format!("{:.1} GiB", kb as f64 / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "unknown".into());
    Machine {
        cpu: field(&cpuinfo, "model name", ':').unwrap_or_else(|| "unknown".into()),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory,
        kernel: read("/proc/sys/kernel/osrelease"),
        os: format!(
            "{} (debian_version {})",
            field(&os_release, "PRETTY_NAME", '=').unwrap_or_else(|| "unknown".into()),
            read("/etc/debian_version")
        ),
        load_start: loadavg(),
        load_end: String::new(),
    }
}

/// Versions of our code, the reference package and the tools the plugins use.
pub fn versions(ours_src: &Path) -> Versions {
    let commit = cmd("git", &["rev-parse", "--short=12", "HEAD"]);
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    let ours = if dirty {
        format!("git {commit} with uncommitted changes")
    } else {
        format!("git {commit}")
    };
    let deb = |p: &str| cmd("dpkg-query", &["-W", "-f=${Version}", p]);
    Versions {
        items: vec![
            (
                "ferro-cni (ours)".into(),
                format!("{ours}, release profile, from {}", ours_src.display()),
            ),
            ("rustc".into(), cmd("rustc", &["--version"])),
            (
                "containernetworking-plugins (reference)".into(),
                format!(
                    "{} (Debian), /usr/lib/cni",
                    deb("containernetworking-plugins")
                ),
            ),
            (
                "iptables (used by the reference)".into(),
                cmd("iptables", &["--version"]),
            ),
            ("nftables".into(), cmd("nft", &["--version"])),
            ("iproute2".into(), cmd("ip", &["-V"])),
            ("GNU time (peak RSS)".into(), deb("time")),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_proc_and_os_release() {
        let cpu = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t: fpu\n";
        assert_eq!(
            field(cpu, "model name", ':').as_deref(),
            Some("Intel(R) Xeon(R) Processor")
        );
        let os = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            field(os, "PRETTY_NAME", '=').as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(field(os, "VERSION", '='), None);
    }

    #[test]
    fn file_system_of_a_path() {
        let info = "1 0 254:0 / / rw - ext4 /dev/vda rw\n\
                    2 1 0:21 / /tmp rw - tmpfs tmpfs rw\n\
                    3 2 0:50 / /tmp rw - tmpfs ferro-tmp rw\n";
        assert_eq!(
            fs_of(info, Path::new("/tmp/ferro-bench/ipam")),
            Some(("tmpfs".into(), "ferro-tmp".into()))
        );
        assert_eq!(
            fs_of(info, Path::new("/work/target/bench")),
            Some(("ext4".into(), "/dev/vda".into()))
        );
        assert_eq!(
            fs_of(info, Path::new("/tmpx")),
            Some(("ext4".into(), "/dev/vda".into())),
            "a component prefix, not a string prefix"
        );
    }
}
