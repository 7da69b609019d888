#!/usr/bin/env bash
# Checks that hotmeter's hot paths inline into a dependent crate built as
# users build it (`cargo build --release`: no LTO, 16 codegen units): builds
# examples/inline_probe.rs so, disassembles each `probe_*` function (one
# recording call each) and lists the calls it still makes. A call into a
# hotmeter function fails the check unless that function is one of the
# cold paths named below (each `#[cold]`/`#[inline(never)]` by design: a
# first use, a contended or refused path). Calls out of hotmeter (memcmp,
# panics, crossbeam-epoch's pin) are listed, not failed.
#
#   bash benches/inline-check.sh
#
# Needs objdump (binutils). Prints a Markdown table; exits non-zero if a
# hot path calls into hotmeter where it should have inlined.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
cargo build -q --release --locked -p hotmeter-benches --example inline_probe >&2
bin=${CARGO_TARGET_DIR:-target}/release/examples/inline_probe
"$bin"
# hotmeter functions a hot path may call: its own cold paths. A thread's
# first slot (slot::assign), a contended counter's shards, a histogram's
# first write to a shard or the shared shard, a native histogram's block
# growth and coarse fallback, a string family's miss and overflow, and the
# native bucket key's general path for subnormals and infinities (frexp's
# recursion, fraction_bounds' table).
cold='hotmeter::(sync::slot::assign|counter::Counter::inc_contended|histogram::Histogram::(observe_cold|activate|observe_shared)|native_histogram::.*(block_slow|coarse_target|observe_cold|observe_shared|activate)|string_family::StringFamily<.*>::(with_cold|route_to_overflow)|index::.*miss|native::(frexp|fraction_bounds)|gauge::.*_slow|.*reject_nan)'
python3 - "$bin" "$cold" <<'PY'
import re, subprocess, sys
binary, cold = sys.argv[1], re.compile(sys.argv[2])
# Symbols by address, for calls through the GOT of a position-independent
# binary (`call *0x...(%rip)`), resolved through its relative relocations.
syms = {}
for line in subprocess.run(["nm", "-C", binary], capture_output=True, text=True, check=True).stdout.splitlines():
    parts = line.split(" ", 2)
    if len(parts) == 3 and parts[0] and parts[1] in ("t", "T", "w", "W"):
        syms.setdefault(int(parts[0], 16), parts[2])
got, got_names = {}, {}
for line in subprocess.run(["readelf", "-rW", binary], capture_output=True, text=True, check=True).stdout.splitlines():
    f = line.split()
    if len(f) >= 4 and f[2] == "R_X86_64_RELATIVE":
        got[int(f[0], 16)] = int(f[3], 16)
    elif len(f) >= 5 and f[2] == "R_X86_64_GLOB_DAT":
        got_names[int(f[0], 16)] = f[4].split("@")[0]
asm = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", binary], capture_output=True, text=True, check=True).stdout
probes, current = {}, None
for line in asm.splitlines():
    m = re.match(r"^[0-9a-f]+ <(probe_[a-z_]+)>:$", line)
    if m:
        current = probes.setdefault(m.group(1), [])
        continue
    if not line.strip():
        current = None
        continue
    if current is None or "call" not in line:
        continue
    target = None
    m = re.search(r"call\s+[0-9a-f]+ <(.+)>", line)
    if m:
        target = m.group(1)
    m = re.search(r"call\s+\*0x[0-9a-f]+\(%rip\)\s+# ([0-9a-f]+)", line)
    if m:
        slot = int(m.group(1), 16)
        target = got_names.get(slot) or syms.get(got.get(slot, -1), f"GOT slot {slot:#x}")
    if target:
        current.append(re.sub(r"@plt$", "", target))
bad = 0
print("| probe | calls into hotmeter (cold paths) | other calls | verdict |")
print("|---|---|---|---|")
for name in sorted(probes):
    calls = sorted(set(probes[name]))
    ours = [c for c in calls if c.startswith("hotmeter::") or c.startswith("<hotmeter::")]
    hot = [c for c in ours if not cold.search(c)]
    other = [c for c in calls if c not in ours]
    bad += bool(hot)
    verdict = "**not inlined: " + ", ".join(f"`{c}`" for c in hot) + "**" if hot else "inlined"
    print(f"| `{name}` | {', '.join(f'`{c}`' for c in ours if c not in hot) or '-'} | {', '.join(f'`{c}`' for c in other) or '-'} | {verdict} |")
if not probes:
    sys.exit("no probe functions found in the binary")
sys.exit(1 if bad else 0)
PY
