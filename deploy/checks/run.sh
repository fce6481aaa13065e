#!/usr/bin/env bash
# Static checks of the deployment files with tools others wrote, offline once installed:
#   checkov        Dockerfile, ARM template, Terraform (with terraform.tfvars.example, so the
#                  optional resources are checked too), Kubernetes manifests, secrets; every
#                  accepted finding carries its reason inline, next to the resource
#   kubernetes-validate  the manifests against the Kubernetes API's schemas (strict)
#   terraform fmt  HashiCorp's formatter and HCL parser (terraform 1.0.3)
#   python-hcl2    a second HCL parser over the .tf files and the tfvars example
#   arm_check.py   the ARM template: JSON, every parameter used, every reference declared
# Not checkable here (no Azure, no cluster, no provider downloads): see docs/deploy.md.
# `.ci/run` calls it; the tools go into .venv-deploy/ (pinned in requirements*.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."
venvs=.venv-deploy
out=target/deploy-checks
mkdir -p "$out"

install() { # venv requirements
  if [ ! -x "$venvs/$1/bin/python" ]; then
    python3 -m venv "$venvs/$1"
  fi
  "$venvs/$1/bin/python" -m pip install --quiet --disable-pip-version-check -r "$2"
}
install tools deploy/checks/requirements.txt
install hcl deploy/checks/requirements-hcl.txt
bin="$venvs/tools/bin"

echo "--- checkov $("$bin/checkov" --version)"
# --skip-download: no Prisma Cloud calls; the built-in checks run as they are. A directory and
# single files cannot be scanned in one run, hence two.
checkov() { # name, then what to scan
  local name=$1
  shift
  LOG_LEVEL=ERROR "$bin/checkov" --skip-download --compact --quiet "$@" \
    -o cli -o json --output-file-path "console,$out/$name.json"
}
status=0
checkov deploy --framework arm terraform kubernetes secrets -d deploy \
  --var-file deploy/terraform/terraform.tfvars.example || status=1
checkov dockerfile --framework dockerfile secrets -f Dockerfile || status=1
# Also fail when a framework scanned nothing or could not parse a file: a check that sees no
# resource passes whatever the files say.
"$venvs/tools/bin/python" - "$out" <<'PY' || status=1
import json, pathlib, sys
reports = []
for path in pathlib.Path(sys.argv[1]).glob("*.json"):
    loaded = json.loads(path.read_text())
    reports += loaded if isinstance(loaded, list) else [loaded]
problems = []
summaries = {}
for r in reports:
    s = summaries.setdefault(r["check_type"], {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0})
    for k in s:
        s[k] += r["summary"].get(k, 0)
for framework in ("dockerfile", "arm", "terraform", "kubernetes"):
    s = summaries.get(framework)
    if s is None or s["passed"] + s["failed"] + s["skipped"] == 0:
        problems.append(f"checkov ran no {framework} check")
for framework, s in sorted(summaries.items()):
    if s["parsing_errors"]:
        problems.append(f"checkov could not parse {s['parsing_errors']} {framework} file(s)")
    print(f"checkov {framework}: {s['passed']} passed, {s['failed']} failed, {s['skipped']} skipped (each with its reason inline)")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
PY
[ "$status" = 0 ] || { echo "checkov: failed checks above" >&2; exit 1; }

echo "--- kubernetes-validate (strict) against Kubernetes 1.37 and 1.30"
# kustomization.yaml is kustomize's, not an API object; the ServiceMonitor is a CRD of the
# Prometheus Operator, whose schema is not bundled (checked by checkov only).
manifests=()
for f in deploy/kubernetes/*.yaml; do
  case "$f" in */kustomization.yaml | */servicemonitor.yaml) ;; *) manifests+=("$f") ;; esac
done
for version in 1.37.0 1.30.0; do
  "$bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}"
done
echo "kubernetes-validate: ${#manifests[@]} manifests valid"

echo "--- terraform fmt ($("$bin/terraform" version | head -1))"
"$bin/terraform" fmt -check -diff -recursive deploy/terraform
"$bin/terraform" fmt -check -diff - <deploy/terraform/terraform.tfvars.example >/dev/null
echo "terraform fmt: formatted"

echo "--- python-hcl2"
"$venvs/hcl/bin/python" - deploy/terraform/*.tf deploy/terraform/terraform.tfvars.example <<'PY'
import sys, hcl2
for path in sys.argv[1:]:
    with open(path) as f:
        hcl2.load(f)
print(f"python-hcl2: {len(sys.argv) - 1} files parsed")
PY

echo "--- ARM"
"$venvs/tools/bin/python" deploy/checks/arm_check.py deploy/azure/azuredeploy.json
