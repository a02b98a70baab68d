"""A real OpenSSH server for tests: 127.0.0.1, a free port, a throwaway host key, key-only auth, internal-sftp."""
import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, kind: str = "ed25519") -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip() if path.suffix else Path(f"{path}.pub").read_text().strip()


class SshServer:
    def __init__(self, base: Path, command: str = "internal-sftp"):
        """`command`: what the server runs for a session (another command stands for an SFTP server that is stuck)."""
        if not Path(SSHD).exists():  # in a test: skipped, naming the package (failed where CI=true)
            from .conftest import need_debian_package
            need_debian_package("openssh-server", False, "a real SFTP server on 127.0.0.1")
        self.base = base
        self.root = base / "sftp-root"
        self.root.mkdir(parents=True)
        self.port = free_port()
        self.user = getpass.getuser()
        self.host_key = base / "host_key"
        host_pub = keygen(self.host_key)
        self.client_key = base / "client_key"
        client_pub = keygen(self.client_key)
        (base / "authorized_keys").write_text(client_pub + "\n")
        self.known_hosts = base / "known_hosts"
        kind, key = host_pub.split()[:2]
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {kind} {key}\n")
        self.config = base / "sshd_config"
        self.config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"PidFile {base / 'sshd.pid'}", f"AuthorizedKeysFile {base / 'authorized_keys'}",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no",
            "Subsystem sftp internal-sftp", f"ForceCommand {command}", "",
        ]))
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        return {
            "MTSS_SFTP_HOST": "127.0.0.1", "MTSS_SFTP_PORT": str(self.port), "MTSS_SFTP_USER": self.user,
            "MTSS_SFTP_KEY_PATH": str(self.client_key), "MTSS_SFTP_KNOWN_HOSTS": str(self.known_hosts),
            "MTSS_SFTP_ROOT": str(self.root),
        }

    def start(self) -> "SshServer":
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege-separation directory
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.base / "sshd.log", "ab"))
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.base / 'sshd.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"SSH"):
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("sshd did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


if __name__ == "__main__":
    # A local SFTP server to try the sensor by hand: prints the MTSS_SFTP_* settings, serves until Ctrl-C.
    import sys
    import tempfile

    base = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="mtss-sftp-"))
    base.mkdir(parents=True, exist_ok=True)
    server = SshServer(base).start()
    for k, v in server.env().items():
        print(f"export {k}={v}")
    print(f"# drops go under {server.root}/<district drop folder>/<drop name>/ (write drop.done last)", flush=True)
    try:
        server.proc.wait()
    except KeyboardInterrupt:
        server.stop()
