"""Differential test against Next's own env loader (issue 12 item 4).

`@next/env` (installed from npm by the Makefile's install step into .venv/node) loads a
table of env files with `loadEnvConfig(dir, dev=true)`; devstack resolves the same files
for a Next.js service. Every variable must get the same value, or `devstack doctor` must
flag its line (code js-dotenv-differs): no silent difference.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import clean_env, make_repo, run_cli

NODE_PREFIX = Path(sys.executable).parents[1] / "node"

# case -> files in its own Next app folder (each name defined in one file, except where a
# case is about precedence)
CASES: dict[str, dict[str, str]] = {
    "precedence": {
        ".env": "P1=env\nP2=env\nP3=env\nP4=env\nFROM_SHELL=env\n",
        ".env.development": "P1=development\nP2=development\nP3=development\n",
        ".env.local": "P1=local\nP2=local\n",
        ".env.development.local": "P1=development.local\n",
        ".env.production": "P4=production\n",
        ".env.test": "P4=test\n",
    },
    "grammar": {
        ".env": "HASH=123#abc\nURL=http://x/#frag\nSPACED=a b  # comment\n"
        "QUOTED_HASH=\"http://x/#frag\"\nSINGLE='it is'\nEMPTY=\nEXPORTED_NAME=1\n"
        'export EXPORTED=yes\nTICKS=`tick`\nESCQ="a\\"b"\nNEWLINE="x\\ny"\n'
        'MULTI="l1\nl2"\nEQ=a=b\nTRAIL=v   \nINLINE_SQ=\'x\' # c\nDQ_HASH="a#b" # c\n'
        "UNICODE=h\u00e9llo\n",
    },
    "expansion": {
        ".env": "BASE=http://localhost\nBRACED=${BASE}/api\nDEFAULTED=${NOPE:-fallback}\n"
        "BARE=$BASE/api\nDQ=\"$BASE\"\nSQ='$BASE'\nSQ_BRACED='${BASE}'\nDOLLARS=a$$b\n"
        "ESCAPED=\\$BASE\nPRICE=5$\n",
        ".env.local": "LATER=${BASE}\n",
    },
}

LOADER = """
const {loadEnvConfig} = require("@next/env");
const {combinedEnv} = loadEnvConfig(process.argv[1], true, {info() {}, error() {}});
console.log(JSON.stringify(combinedEnv));
"""


@pytest.fixture(scope="module")
def next_env() -> Path:
    module = NODE_PREFIX / "node_modules" / "@next" / "env"
    if not module.is_dir():  # the Makefile's install step does this; a bare venv catches up
        subprocess.run(
            ["npm", "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund",
             "--silent", "@next/env"],
            check=True, timeout=300,
        )  # fmt: skip
    return NODE_PREFIX / "node_modules"


def test_devstack_reads_what_next_reads_or_doctor_says_why(repo: Path, next_env: Path) -> None:
    services = "".join(f"  {case}: {{cmd: next dev, cwd: apps/{case}}}\n" for case in CASES)
    files = {
        f"apps/{case}/{name}": text
        for case, case_files in CASES.items()
        for name, text in case_files.items()
    }
    for case in CASES:
        files[f"apps/{case}/package.json"] = '{"dependencies": {"next": "15"}}'
    make_repo(repo, "env: [FROM_SHELL]\nservices:\n" + services, files)
    shell = clean_env(FROM_SHELL="shell")
    by_next = {}
    for case in CASES:  # one process each: @next/env keeps what it loaded in the module
        node = subprocess.run(
            ["node", "-e", LOADER, str(repo / "apps" / case)],
            env={**shell, "NODE_PATH": str(next_env)},
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        by_next[case] = json.loads(node.stdout)
    plan = run_cli("config", "--json", "--reveal", cwd=repo, env=shell)
    assert plan.returncode == 0, plan.stderr
    by_devstack = {name: s["env"] for name, s in json.loads(plan.stdout)["services"].items()}
    doctor = run_cli("doctor", "--json", "--no-ports", cwd=repo, env=shell)
    flagged = {
        (p["file"].split("/")[1], p["message"].split(":")[0])
        for p in json.loads(doctor.stdout)["problems"]
        if p["code"] == "js-dotenv-differs"
    }
    checked = 0
    for case, case_files in CASES.items():
        names = {
            line.split("=", 1)[0].removeprefix("export ")
            for text in case_files.values()
            for line in text.splitlines()
            if "=" in line and not line.startswith((" ", "l2"))
        }
        for name in sorted(names):
            same = by_next[case].get(name) == by_devstack[case].get(name)
            assert same != ((case, name) in flagged), (
                case, name, by_next[case].get(name), by_devstack[case].get(name)
            )  # fmt: skip
            checked += 1
    assert checked >= 30
    # the precedence rows agree with Next: nothing there may need a warning
    assert by_devstack["precedence"]["P1"] == by_next["precedence"]["P1"] == "development.local"
    assert by_devstack["precedence"]["FROM_SHELL"] == "shell"
