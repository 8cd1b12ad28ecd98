"""The mirror host: artifacts over HTTP, NTP (chrony), DNS for the lab's names, apt-cacher-ng, and the internal registry
(lab/registry.yml, then the images of lab/registry-images pushed).
"""

import hashlib
import json
import os
import time

import yaml

from .common import BOOT_TIMEOUT, LAB_DIR, REPO, LabError, logger
from .plan import APT_CACHER_PORT, REGISTRY_PORT, SSH_KEY

log = logger("lab")
REGISTRY_PLAYBOOK = os.path.join(LAB_DIR, "registry.yml")
ARTIFACT_VERSIONS = os.path.join(LAB_DIR, "artifacts", "versions.yml")
REGISTRY_IMAGES_BUILD = os.path.join(LAB_DIR, "registry-images", "build")
ANSIBLE_PLAYBOOK = os.path.join(REPO, ".venv", "bin", "ansible-playbook")


class Mirror:
    def __init__(self, plan, runner):
        self.plan = plan
        self.run = runner
        self.cname = plan.ctr_name("mirror")

    def configure(self):
        """HTTP, NTP and apt-cacher-ng on the mirror, each answering before this returns."""
        if not self.plan.mirror:
            return
        run, cname = self.run, self.cname
        run.wait_systemd(cname, BOOT_TIMEOUT)
        proc = run.script(cname, "mirror-http.sh", input=self.plan.mirror_unit())
        if proc.returncode != 0:
            raise LabError(f"mirror service did not start in {cname}: {proc.stderr.strip()}")
        proc = run.script(cname, "mirror-ntp.sh")
        if proc.returncode != 0:
            raise LabError(f"NTP on the mirror did not start in {cname}: {proc.stderr.strip()}")
        # the lab's IDC resolver: <host>.<lab>.idc, nothing else (CoreDNS of the artifacts)
        with open(ARTIFACT_VERSIONS) as f:
            coredns_version = yaml.safe_load(f)["coredns"]["version"]
        cut = "---8<---\n"
        dns = self.plan.dns_corefile() + cut + self.plan.dns_zonefile() + cut + self.plan.dns_unit(coredns_version)
        proc = run.script(cname, "mirror-dns.sh", input=dns)
        if proc.returncode != 0:
            raise LabError(f"DNS on the mirror did not start in {cname}: {proc.stderr.strip()}")
        # the lab hosts' only way to Debian packages (the mirror may reach Debian on tcp 80/443)
        proc = run.script(cname, "apt-cacher.sh", str(APT_CACHER_PORT))
        if proc.returncode != 0:
            raise LabError(f"apt-cacher-ng on the mirror did not start in {cname}: {proc.stderr.strip()}")
        address = self.plan.mirror["address"]
        run.wait_tcp([address], 80, 60, "mirror http")
        run.wait_tcp([address], 53, 60, "mirror dns")
        run.wait_tcp([address], APT_CACHER_PORT, 60, "apt-cacher-ng")

    # --- the registry ----------------------------------------------------------------------
    @property
    def cert_dir(self):
        """Where `up` keeps the registry's CA for pushes (certs.d/<registry>/ca.crt)."""
        return os.path.join(self.plan.state_dir, "certs.d", self.plan.registry)

    def registry_answers(self):
        """GET /v2/ over TLS, verified with the CA `up` stored for pushes."""
        ca = os.path.join(self.cert_dir, "ca.crt")
        if not os.path.exists(ca):
            return False
        return self.run.https_ok(f"https://{self.plan.registry}/v2/", ca)

    def registry_stamp(self):
        """What the last successful lab/registry.yml run depended on, or None if unknown.

        The playbook, the description, the mirror container and the cluster CA at its
        default path (a CA brought elsewhere means no stamp: the playbook always runs).
        """
        ca = self.plan.registry_ca()
        if not os.path.exists(ca):
            return None
        h = hashlib.sha256()
        for path in (REGISTRY_PLAYBOOK, self.plan.idc_path, ca):
            with open(path, "rb") as f:
                h.update(f.read())
        h.update((self.run.inspect("{{.Id}}", self.cname) + "\n").encode())
        return h.hexdigest()

    def configure_registry(self):
        """The internal registry on the mirror (lab/registry.yml), then the images it lacks.

        The playbook is skipped when nothing it depends on changed since it last passed and
        the registry answers over TLS verified with the CA: a no-op `up` stays fast.
        """
        if not self.plan.registry:
            return
        stamp_file = os.path.join(self.plan.state_dir, "registry.stamp")
        stamp = self.registry_stamp()
        previous = None
        if os.path.exists(stamp_file):
            with open(stamp_file) as f:
                previous = f.read().strip()
        if stamp is None or stamp != previous or not self.registry_answers():
            self.run_registry_playbook()
            stamp = self.registry_stamp()
            if stamp:
                with open(stamp_file, "w") as f:
                    f.write(stamp + "\n")
        self.run.python(
            REGISTRY_IMAGES_BUILD,
            "--push",
            self.plan.registry,
            "--cert-dir",
            self.cert_dir,
            what="lab/registry-images/build",
        )

    def run_registry_playbook(self):
        started = time.monotonic()
        playbook = ANSIBLE_PLAYBOOK if os.access(ANSIBLE_PLAYBOOK, os.X_OK) else "ansible-playbook"
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_FORCE_COLOR="0")
        extra = {
            "lab_mirror_address": self.plan.mirror["address"],
            "lab_registry_port": REGISTRY_PORT,
            "lab_ssh_key": SSH_KEY,
            "lab_registry_cert_dir": self.cert_dir,
        }
        proc = self.run.capture(
            [playbook, "-i", self.plan.idc_path, REGISTRY_PLAYBOOK, "-e", json.dumps(extra)], cwd=REPO, env=env
        )
        if proc.returncode != 0:
            raise LabError(f"lab/registry.yml failed on {self.cname}:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
        recap = [line for line in proc.stdout.splitlines() if "changed=" in line]
        log(
            f"registry https://{self.plan.registry} ready in {time.monotonic() - started:.1f}s "
            f"({'; '.join(' '.join(line.split()[:4]) for line in recap)})"
        )
