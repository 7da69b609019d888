#!/usr/bin/env bash
# Mutation testing of the loom models: applies each mutation listed below to
# the real code (one at a time, on a scratch copy of the workspace so the
# working tree is never touched), runs the loom model meant to catch it, and
# reports "caught" (the model failed) or "NOT CAUGHT". Exits non-zero if any
# mutation is not caught or does not apply.
#
#   bash loom-tests/mutate.sh            # every mutation (about a minute each on 2 cores)
#   bash loom-tests/mutate.sh M3 M7      # only these
#
# The list is the table in loom-tests/MUTATIONS.md; keep the two in step.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"

# id ~ file ~ perl substitution (must match exactly once) ~ test binary ~ test name
mutations=(
  "M1~crates/hotmeter/src/counter.rs~s/shards\[i\]\.fetch_add\(n, Ordering::Relaxed\);/{ let v = shards[i].load(Ordering::Relaxed); shards[i].store(v + n, Ordering::Relaxed); }/~counter~more_threads_than_shards_lose_no_increment"
  "M2~crates/hotmeter/src/index.rs~s/if inner\.live\.load\(Ordering::Acquire\) >= inner\.limit && inner\.expiring\.load\(Ordering::Relaxed\) == 0 \{\n(\s*)return inner\.find_live\(pin, hash, values\);/if inner.live.load(Ordering::Acquire) >= inner.limit \&\& inner.expiring.load(Ordering::Relaxed) == 0 {\n\$1return None;/~family~an_existing_label_set_never_overflows_at_the_limit"
  "M3~crates/hotmeter/src/index.rs~s/if full \|\| \(!inner\.reclaim && w\.allocated >= 2 \* inner\.limit\) \{/if !inner.reclaim \&\& w.allocated >= 2 * inner.limit {/~family~cardinality_limit_holds_under_race"
  "M4~crates/hotmeter/src/index.rs~s/if inner\.live\.load\(Ordering::Acquire\) >= inner\.limit && inner\.expiring/if inner.live.load(Ordering::Relaxed) >= inner.limit \&\& inner.expiring/~family~an_existing_label_set_never_overflows_at_the_limit"
  "M5~crates/hotmeter/src/index.rs~s/\/\/ Release: publishes the new index word to the unlocked full check\.\n(\s*)inner\.live\.fetch_add\(1, Ordering::Release\);/inner.live.fetch_add(1, Ordering::Relaxed);/~family~an_existing_label_set_never_overflows_at_the_limit"
  "M7~crates/hotmeter/src/index.rs~s/\/\/ Another thread may have inserted it while we waited\.\n(\s*)if let Some\(entry\) = inner\.find_live\(pin, hash, values\) \{/if let Some(entry) = None::<\&Entry<V>> {/~family~same_label_set_same_series"
  "M8~crates/hotmeter/src/index.rs~s/let mut w = lock\(&inner\.writers\);\n(\s*)if let Some\(entry\) = inner\.find_live\(&pin, hash, values\) \{/let mut w = Writers { slots: 0, used: 0, sorted: Vec::new(), version: 0, next_id: 0, allocated: 0, kept: Vec::new(), expiring: Vec::new() };\n\$1if let Some(entry) = inner.find_live(\&pin, hash, values) {/~family~concurrent_removes_of_one_label_set_count_once"
  "M9~crates/hotmeter/src/gauge.rs~s/match cell\.compare_exchange_weak\(cur, new, Ordering::Relaxed, Ordering::Relaxed\) \{/cell.store(new, Ordering::Relaxed);\n        match Ok::<u64, u64>(cur) {/~gauge~gauge_add_loses_nothing"
  "M10~crates/hotmeter/src/histogram.rs~s/seq\.store\(s\.wrapping_add\(2\), Ordering::Release\);/seq.store(s.wrapping_add(2), Ordering::Relaxed);/~histogram~snapshot_during_observe_is_consistent"
  "M11~crates/hotmeter/src/histogram.rs~s/shard\.count\(h \* core\.buckets \+ bucket\)\.fetch_add\(1, Ordering::Release\);/shard.count(h * core.buckets + bucket).fetch_add(1, Ordering::Relaxed);/~histogram~shared_shard_writers_and_reader"
  "M12~crates/hotmeter/src/histogram.rs~s/add_f64\(&shard\.sum\[h\], v\);/{ let c = &shard.sum[h]; c.store((f64::from_bits(c.load(Ordering::Relaxed)) + v).to_bits(), Ordering::Relaxed); }/~histogram~shared_shard_writers_and_reader"
  "M13~crates/hotmeter/src/histogram.rs~s/let started = shard\.control\.fetch_add\(1, Ordering::Relaxed\);/let started = shard.control.load(Ordering::Relaxed); shard.control.store(started + 1, Ordering::Relaxed);/~histogram~shared_shard_writers_and_reader"
  "M14~crates/hotmeter/src/sync.rs~s/Some\(i\) => slots\.free\.swap_remove\(i\),/Some(i) => slots.free[i],/~slots~an_exited_threads_slot_goes_to_one_thread"
  "M15~crates/hotmeter/src/sync.rs~s/lock\(&self\.slots\)\.free\.push\(slot\);/let _ = slot;/~slots~an_exited_threads_slot_goes_to_one_thread"
  "M16~crates/hotmeter/src/counter.rs~s/add_to_shard\(shards, n\);\n    \}/let _ = (shards, n);\n    }/~counter~sharded_counter_loses_no_increment"
  "M17~crates/hotmeter/src/counter.rs~s/shards\.iter\(\)\.fold\(first, /shards.iter().fold(0, /~counter~sharded_counter_loses_no_increment"
  "M18~crates/hotmeter/src/index.rs~s/if seen == Some\(w\.version\) \{/if seen.is_some() {/~family~a_scrape_racing_an_insert_and_a_removal_is_consistent"
  "M19~crates/hotmeter/src/index.rs~s/inner\.live\.fetch_sub\(1, Ordering::Relaxed\);\n(\s*)w\.version \+= 1;/inner.live.fetch_sub(1, Ordering::Relaxed);/~family~a_scrape_racing_an_insert_and_a_removal_is_consistent"
  "M20~crates/hotmeter/src/native_histogram.rs~s/seq\.store\(s\.wrapping_add\(2\), Ordering::Release\);/seq.store(s.wrapping_add(2), Ordering::Relaxed);/~native_histogram~a_snapshot_racing_a_claim_and_the_fallback_is_a_whole_prefix"
  "M21~crates/hotmeter/src/native_histogram.rs~s/t\.cells\[h \* t\.stride \+ t\.index\]\.fetch_add\(1, Ordering::Release\);/t.cells[h * t.stride + t.index].fetch_add(1, Ordering::Relaxed);/~native_histogram~writers_on_owned_and_shared_shards_lose_and_tear_nothing"
  "M22~crates/hotmeter/src/native_histogram.rs~s/if let Some\(coarse\) = side\.coarse\.get\(\) \{/if let Some(coarse) = None::<\&Box<[AtomicU64]>> {/~native_histogram~a_snapshot_racing_a_claim_and_the_fallback_is_a_whole_prefix"
  "M23~crates/hotmeter/src/index.rs~s/inner\.live\.fetch_sub\(1, Ordering::Relaxed\);\n(\s*)w\.version \+= 1;/inner.live.fetch_sub(1, Ordering::Relaxed);/~family~a_scrape_racing_an_insert_and_a_retain_is_consistent"
  "M24~crates/hotmeter/src/index.rs~s/let mut w = lock\(&inner\.writers\);\n(\s*)let mut values/let mut w = Writers { slots: 0, used: 0, sorted: lock(\&inner.writers).sorted.clone(), version: 0, next_id: 0, allocated: 0, kept: Vec::new(), expiring: Vec::new() };\n\$1let mut values/~family~a_retain_racing_a_remove_of_one_label_set_counts_once"
  "M26~crates/hotmeter/src/index.rs~s/if still_idle\(&e\.value, x\.fingerprint\) \{/if true {/~lifecycle~expiry_racing_an_increment_loses_nothing"
  "M27~crates/hotmeter/src/index.rs~s/if !w\.expiring\[i\]\.quiet\.load\(Ordering::Acquire\) \{/if false {/~lifecycle~expiry_racing_an_increment_loses_nothing"
  "M28~crates/hotmeter/src/index.rs~s/let expiring = w\.expiring_position\(hash, values\);\n(\s*)if let Some\(at\) = expiring \{\n(\s*)\/\/ Its expiry is cancelled/let expiring = None::<usize>;\n\$1if let Some(at) = expiring {\n\$2\/\/ Its expiry is cancelled/~lifecycle~an_expiring_entry_comes_back_to_a_lookup_or_a_raced_update"
  "M30~crates/hotmeter-streaming/src/observation.rs~s/self\.0\.fetch_add\(1 \+ SUBMISSION, Ordering::Acquire\)/self.0.fetch_add(SUBMISSION, Ordering::Acquire)/~space_life~retirement_racing_a_submission_and_a_worker_loses_no_record"
  "M31~crates/hotmeter-streaming/src/observation.rs~s/while cur & \(RETIRED \| REMOVED \| HOLDS\) == RETIRED \{/while cur \& (RETIRED | REMOVED) == RETIRED {/~space_life~retirement_racing_a_submission_and_a_worker_loses_no_record"
  "M32~crates/hotmeter-streaming/src/observation.rs~s/let prev = self\.0\.fetch_sub\(n, Ordering::Release\);/let prev = self.0.fetch_sub(n, Ordering::Relaxed);/~space_life~retirement_racing_a_submission_and_a_worker_loses_no_record"
  "M33~crates/hotmeter-streaming/src/observation.rs~s/if prev & REMOVED != 0 \{\n(\s*)Entered::Removed/if false {\n\$1Entered::Removed/~space_life~retirement_racing_a_submission_and_a_worker_loses_no_record"
  "M34~crates/hotmeter/src/counter.rs~s/cells\.first\.fetch_add\(n, Ordering::Relaxed\);/{ let v = cells.first.load(Ordering::Relaxed); cells.first.store(v.wrapping_add(n), Ordering::Relaxed); }/~counter~sharded_counter_loses_no_increment"
)

wanted=("$@")
known=" $(for m in "${mutations[@]}"; do printf '%s ' "${m%%~*}"; done)"
for w in "${wanted[@]}"; do
  if [[ "$known" != *" $w "* ]]; then
    echo "mutate.sh: no mutation $w (known:$known)" >&2
    exit 2
  fi
done

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# A scratch copy of the sources (not target/): the working tree is never
# touched.
tar -C "$root" --exclude=./target --exclude=./.git -cf - . | tar -C "$scratch" -xf -
# A target directory of the mutants' own. Never the models' `target/loom`:
# cargo names a path package's artifacts by its place in the workspace, the
# same in the scratch copy, so a mutant built there would be taken as up to
# date by the real tree's next loom run.
export CARGO_TARGET_DIR="${MUTANTS_TARGET_DIR:-$root/target/loom-mutants}"

failures=0
printf '| id | file | test | result |\n|---|---|---|---|\n'
for m in "${mutations[@]}"; do
  IFS='~' read -r id file subst bin name <<<"$m"
  if [ "${#wanted[@]}" -gt 0 ] && [[ ! " ${wanted[*]} " == *" $id "* ]]; then continue; fi
  cp "$root/$file" "$scratch/$file"
  # Every occurrence is replaced and counted: the pattern must match once.
  if ! perl -0pi -e "\$n = (${subst}g); END { exit(\$n == 1 ? 0 : 3) }" "$scratch/$file"; then
    printf '| %s | %s | %s | DOES NOT APPLY (must match exactly once) |\n' "$id" "$file" "$bin::$name"
    failures=$((failures + 1))
    cp "$root/$file" "$scratch/$file"
    continue
  fi
  log="$scratch/$id.log"
  if (cd "$scratch" && RUSTFLAGS="--cfg hotmeter_loom --cfg crossbeam_loom" timeout 600 cargo test -p loom-tests --release \
        --test "$bin" -- --exact "$name" >"$log" 2>&1); then
    result="NOT CAUGHT"
    failures=$((failures + 1))
  elif grep -qx "test $name - should panic ... FAILED\|test $name ... FAILED" "$log"; then
    # Caught only when the named model ran and failed: not a compile error,
    # a missing test, a time-out or a failure to build.
    result="caught"
  else
    result="ERROR (the model did not run; see below)"
    failures=$((failures + 1))
    tail -n 15 "$log" | sed 's/^/    /' >&2
  fi
  printf '| %s | %s | %s | %s |\n' "$id" "$file" "$bin::$name" "$result"
  cp "$root/$file" "$scratch/$file"
done
exit $((failures > 0))
