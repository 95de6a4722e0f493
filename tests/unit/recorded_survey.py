"""Survey output as a fleet server prints it, for the preflight tests: `framed` writes readable sections in
the survey script's form, and RECORDED is one server's recorded answer, with the installer link failing."""

from __future__ import annotations

import base64

from xsoar_mt.checks.survey import HEAD


def framed(text: str) -> str:
    """Sections written as `==xsoar-mt== NAME`, its text, `==rc== CODE` (readable here) in the form the
    survey script prints them: each section's text in base64 on one line."""
    out: list[str] = []
    name: str | None = None
    body: list[str] = []
    for line in text.split("\n"):
        if line.startswith(HEAD):
            name, body = line, []
        elif line.startswith("==rc== ") and name is not None:
            encoded = base64.b64encode("\n".join(body).strip("\n").encode()).decode() or "-"
            out += [name, f"==body== {encoded}", line]
            name = None
        elif name is not None:
            body.append(line)
    return "\n".join(out) + "\n"


# What the survey script printed on a fleet server (recorded), with the installer link failing.
RECORDED = framed("""==xsoar-mt== version
{"demistoVersion": "6.11.0", "buildNumber": "", "server": "g1a"}
==rc== 0
==xsoar-mt== df-installer
Filesystem           1024-blocks         Used    Available Capacity Mounted on
/dev/xsoarg1a           2097152000   1048576000   1048576000      50% /
==rc== 0
==xsoar-mt== df-data
Filesystem           1024-blocks         Used    Available Capacity Mounted on
/dev/xsoarg1a           1073741824    973741824       102400      99% /var
==rc== 0
==xsoar-mt== extract-dir
rw,nosuid,nodev,noexec,relatime
==rc== 0
==xsoar-mt== working-directory
XM_UID 0
XM_DIR 0 d 0 755 Lw==
XM_DIR 0 d 0 755 L3Zhcg==
XM_DIR 0 d 0 755 L3Zhci9saWI=
XM_DIR 0 - - - L3Zhci9saWIveHNvYXItbXQ=
XM_DIR 1 d 0 755 Lw==
XM_DIR 1 d 0 755 L3Zhcg==
XM_DIR 1 d 0 755 L3Zhci9saWI=
XM_DIR 1 - - - L3Zhci9saWIveHNvYXItbXQ=
XM_DIR 1 - - - L3Zhci9saWIveHNvYXItbXQvYmFja3Vw
==rc== 0
==xsoar-mt== nproc
16
==rc== 0
==xsoar-mt== memory
                 total        used        free      shared  buff/cache   available
Mem:       34359738368  8589934592 17179869184           0  8589934592 25769803776
Swap:                0           0           0
==rc== 0
==xsoar-mt== installer-link
tool=wget
ERROR 403: Forbidden (missing or invalid token).

==rc== 8
==xsoar-mt== tcp
==tcp== 10.0.0.1 443 0
==tcp== 10.0.0.2 443 124
==tcp== 10.0.1.2 443 0
==tcp== 10.0.1.1 18501 1
==tcp== 10.0.1.1 18502 0
==rc== 0
""")
