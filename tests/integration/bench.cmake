tw_integration_test(bench_experiment SCRIPT tests/integration/test_bench_experiment.py TIMEOUT 120)
# A short 8-endpoint point run for real and in simulation; the two must agree (docs/fleetsim.md).
tw_integration_test(fleetsim_validity SCRIPT tests/integration/test_fleetsim_validity.py TIMEOUT 150)
