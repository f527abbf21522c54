# Integration tests that only `scripts/test --long` runs (ctest label `long`):
# each takes over 30 s, and bench/soak-2min injects the same faults.
set_tests_properties(
  integration/mirror_loses_nothing_when_killed_three_times_and_resends_at_most_the_in_flight_bound
  integration/mirror_catches_up_by_itself_after_the_target_broker_is_down_for_30s
  PROPERTIES LABELS "integration;long")
