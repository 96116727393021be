#!/usr/bin/env python3
"""deploy/lint.py: check the manifests in deploy/ (CI, test.sh).

    deploy/lint.py [--image NAME] [--self-test] [DIR]

Parses every *.yaml in DIR (default: this directory) and checks the fields that
matter on a node: the DaemonSet's hostNetwork, system-node-critical priority,
tolerations (every taint), privileged containers, the image (= NAME, default
the name deploy/image.sh gives the tarball, so the manifest runs the image that
was imported), the hostPaths /opt/cni/bin, /etc/cni/net.d, /var/lib/cni and
/run mounted where mactrunk-install looks for them, the installer's command
and arguments; and the NetworkAttachmentDefinitions: valid JSON config named
like the object, type mactrunk with mactrunk-ipam, the headline uses covered
(a VLAN trunk, ipvlan, cluster IPAM whose TLS files are the ones the installer
writes). --self-test also breaks a copy of each checked field and expects the
check to fail. Prints PASS/FAIL per check, then "N passed, M failed"; exit 1 if
M > 0. Needs python3 and PyYAML (Debian: python3-yaml).
"""

import copy
import json
import os
import re
import subprocess
import sys

try:
    import yaml
except ImportError:
    print("lint.py: PyYAML is missing (Debian: apt-get install python3-yaml)")
    print("0 passed, 1 failed")
    sys.exit(1)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
INSTALLER = "/opt/mactrunk/bin/mactrunk-install"
# hostPath -> where mactrunk-install (or mactrunk-ipam) expects it in the pod
HOST_PATHS = {
    "/opt/cni/bin": "/host/opt/cni/bin",  # mactrunk-install --cni-bin-dir default
    "/etc/cni/net.d": "/host/etc/cni/net.d",  # --cni-conf-dir default
    "/var/lib/cni": "/var/lib/cni",  # mactrunk-ipam's default dataDir parent
    "/run": "/run",  # /run/netns for mactrunk-ipam metrics
}
TLS_DIR = "/etc/mactrunk/etcd-tls"  # --etcd-tls-dir default


def installer_credentials():
    """The file names mactrunk-install gives the Secret's keys (from its source)."""
    src = open(os.path.join(REPO, "src/bin/mactrunk-install/main.rs")).read()
    pairs = re.findall(r'\("(ca\.crt|tls\.crt|tls\.key)", "([^"]+)"\)', src)
    return dict(pairs)


def default_image():
    out = subprocess.run(
        [os.path.join(HERE, "image.sh"), "--print-name"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def load(dir_):
    docs = []
    for name in sorted(os.listdir(dir_)):
        if name.endswith(".yaml"):
            with open(os.path.join(dir_, name)) as f:
                for d in yaml.safe_load_all(f):
                    if d is not None:
                        docs.append((name, d))
    return docs


def checks(docs, image, creds):
    """(name, ok, detail) for every check over the parsed documents."""
    out = []

    def check(name, ok, detail=""):
        out.append((name, bool(ok), detail))

    for f, d in docs:
        check(
            f"{f}: {d.get('kind')}/{(d.get('metadata') or {}).get('name')} has apiVersion, kind, metadata.name",
            isinstance(d, dict) and d.get("apiVersion") and d.get("kind") and (d.get("metadata") or {}).get("name"),
        )
    ds = [d for _, d in docs if d.get("kind") == "DaemonSet"]
    check("one DaemonSet", len(ds) == 1, f"found {len(ds)}")
    if ds:
        spec = ((ds[0].get("spec") or {}).get("template") or {}).get("spec") or {}
        check("hostNetwork: true", spec.get("hostNetwork") is True)
        check(
            "priorityClassName: system-node-critical",
            spec.get("priorityClassName") == "system-node-critical",
        )
        tol = spec.get("tolerations") or []
        check(
            "tolerates every taint (operator: Exists without key or effect)",
            any(t.get("operator") == "Exists" and not t.get("key") and not t.get("effect") for t in tol),
            json.dumps(tol),
        )
        sel = ((ds[0].get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        labels = (((ds[0].get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
        check(
            "selector matches the pod labels",
            sel and all(labels.get(k) == v for k, v in sel.items()),
        )
        vols = {v.get("name"): v for v in spec.get("volumes") or []}
        host = {v["hostPath"].get("path"): n for n, v in vols.items() if v.get("hostPath")}
        check(
            "hostPaths are exactly " + ", ".join(sorted(HOST_PATHS)),
            set(host) == set(HOST_PATHS),
            f"found {sorted(host)}",
        )
        secret = [n for n, v in vols.items() if v.get("secret")]
        check(
            "the etcd TLS Secret volume is optional",
            len(secret) == 1 and vols[secret[0]]["secret"].get("optional") is True,
        )
        init = spec.get("initContainers") or []
        main = spec.get("containers") or []
        check("an init container (install) and a container (watch)", len(init) == 1 and len(main) == 1)
        for role, c, first in [("init", init, "install"), ("main", main, "watch")]:
            for c in c:
                n = c.get("name")
                check(f"{role} container {n}: privileged", (c.get("securityContext") or {}).get("privileged") is True)
                check(
                    f"{role} container {n}: image {image}",
                    c.get("image") == image,
                    f"manifest says {c.get('image')}",
                )
                check(
                    f"{role} container {n}: imagePullPolicy IfNotPresent or Never (the image is imported, not pulled)",
                    c.get("imagePullPolicy") in ("IfNotPresent", "Never"),
                )
                check(
                    f"{role} container {n}: runs {INSTALLER} {first}",
                    (c.get("command") or [None])[0] == INSTALLER and (c.get("args") or [None])[0] == first,
                    f"{c.get('command')} {c.get('args')}",
                )
                env = {e.get("name"): e for e in c.get("env") or []}
                check(
                    f"{role} container {n}: NODE_NAME from spec.nodeName",
                    ((env.get("NODE_NAME") or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
                    == "spec.nodeName",
                )
                mounts = {m.get("name"): m for m in c.get("volumeMounts") or []}
                for path, want in HOST_PATHS.items():
                    m = mounts.get(host.get(path))
                    check(
                        f"{role} container {n}: hostPath {path} mounted at {want}",
                        m is not None and m.get("mountPath") == want and not m.get("readOnly"),
                        f"mount {m}",
                    )
                m = mounts.get(secret[0]) if secret else None
                check(
                    f"{role} container {n}: Secret mounted at {TLS_DIR}",
                    m is not None and m.get("mountPath") == TLS_DIR,
                )

    nads = [(f, d) for f, d in docs if d.get("kind") == "NetworkAttachmentDefinition"]
    confs = []
    for f, d in nads:
        name = (d.get("metadata") or {}).get("name")
        try:
            c = json.loads((d.get("spec") or {}).get("config") or "")
        except ValueError as e:
            check(f"{f}: {name}: spec.config is JSON", False, str(e))
            continue
        confs.append(c)
        check(f"{f}: {name}: apiVersion k8s.cni.cncf.io/v1", d.get("apiVersion") == "k8s.cni.cncf.io/v1")
        check(f"{f}: {name}: config name is the object's name", c.get("name") == name, c.get("name"))
        check(
            f"{f}: {name}: type mactrunk, ipam.type mactrunk-ipam",
            c.get("type") == "mactrunk" and (c.get("ipam") or {}).get("type") == "mactrunk-ipam",
        )
        check(f"{f}: {name}: cniVersion 1.1.0", c.get("cniVersion") == "1.1.0")
    check("a VLAN trunk NAD (vlan)", any("vlan" in c for c in confs))
    check("an ipvlan NAD (linkType ipvlan)", any(c.get("linkType") == "ipvlan" for c in confs))
    cluster = [c for c in confs if "cluster" in (c.get("ipam") or {})]
    check("a cluster IPAM NAD (ipam.cluster)", cluster)
    want = {
        "ca": "/etc/cni/net.d/mactrunk.d/" + creds.get("ca.crt", "?"),
        "cert": "/etc/cni/net.d/mactrunk.d/" + creds.get("tls.crt", "?"),
        "key": "/etc/cni/net.d/mactrunk.d/" + creds.get("tls.key", "?"),
    }
    for c in cluster:
        cl = c["ipam"]["cluster"]
        check(
            f"{c.get('name')}: ipam.cluster.tls names the files mactrunk-install writes",
            cl.get("tls") == want,
            f"{cl.get('tls')} vs {want}",
        )
        check(
            f"{c.get('name')}: https etcd endpoints",
            cl.get("etcdEndpoints") and all(e.startswith("https://") for e in cl["etcdEndpoints"]),
        )
    return out


# --self-test: each mutation of the real manifests must make some check fail
def _ds(docs):
    return next(d for _, d in docs if d.get("kind") == "DaemonSet")["spec"]["template"]["spec"]


def _nad(docs, pred):
    for _, d in docs:
        if d.get("kind") == "NetworkAttachmentDefinition":
            c = json.loads(d["spec"]["config"])
            if pred(c):
                return d, c
    raise LookupError("no such NAD")


def _edit_nad(pred, fn):
    def mutate(docs):
        d, c = _nad(docs, pred)
        fn(c)
        d["spec"]["config"] = json.dumps(c)

    return mutate


MUTATIONS = {
    "hostNetwork off": lambda docs: _ds(docs).update(hostNetwork=False),
    "no priority class": lambda docs: _ds(docs).pop("priorityClassName"),
    "tolerations of one taint only": lambda docs: _ds(docs).update(
        tolerations=[{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]
    ),
    "watch not privileged": lambda docs: _ds(docs)["containers"][0]["securityContext"].update(privileged=False),
    "another image": lambda docs: _ds(docs)["initContainers"][0].update(image="docker.io/library/mactrunk:latest"),
    "imagePullPolicy Always": lambda docs: _ds(docs)["containers"][0].update(imagePullPolicy="Always"),
    "no /run hostPath": lambda docs: _ds(docs)["volumes"].__setitem__(
        slice(None), [v for v in _ds(docs)["volumes"] if (v.get("hostPath") or {}).get("path") != "/run"]
    ),
    "bin dir mounted elsewhere": lambda docs: [
        m.update(mountPath="/host/opt/cni/bin2")
        for m in _ds(docs)["initContainers"][0]["volumeMounts"]
        if m["mountPath"] == "/host/opt/cni/bin"
    ],
    "init runs watch": lambda docs: _ds(docs)["initContainers"][0].update(args=["watch"]),
    "NAD config name differs": _edit_nad(lambda c: "vlan" in c, lambda c: c.update(name="other")),
    "NAD TLS file the installer does not write": _edit_nad(
        lambda c: "cluster" in c.get("ipam", {}),
        lambda c: c["ipam"]["cluster"]["tls"].update(key="/etc/cni/net.d/mactrunk.d/client.key"),
    ),
    "no ipvlan NAD": _edit_nad(lambda c: c.get("linkType") == "ipvlan", lambda c: c.pop("linkType")),
}


def main(argv):
    image = None
    self_test = False
    dir_ = HERE
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--image":
            image = args.pop(0)
        elif a == "--self-test":
            self_test = True
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            dir_ = a
    image = image or default_image()
    creds = installer_credentials()
    passed = failed = 0

    def report(name, ok, detail=""):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"PASS {name}")
        else:
            failed += 1
            print(f"FAIL {name}" + (f" ({detail})" if detail else ""))

    report("installer credential names found in its source", len(creds) == 3, str(creds))
    try:
        docs = load(dir_)
        report(f"YAML of {dir_} parses ({len(docs)} documents)", docs)
    except yaml.YAMLError as e:
        report("YAML parses", False, str(e))
        docs = []
    for name, ok, detail in checks(docs, image, creds):
        report(name, ok, detail)
    if self_test:
        for what, mutate in MUTATIONS.items():
            broken = copy.deepcopy(docs)
            mutate(broken)
            bad = [n for n, ok, _ in checks(broken, image, creds) if not ok]
            report(f"self-test: {what} is caught", bad, "no check failed")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
