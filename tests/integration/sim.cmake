# tokenway-sim integration tests: the real simulator binary over loopback (stdlib Python only).
tw_integration_test(sim_api SCRIPT tests/integration/test_sim_api.py TIMEOUT 120)
tw_integration_test(sim_errors SCRIPT tests/integration/test_sim_errors.py TIMEOUT 120)
tw_integration_test(sim_faults SCRIPT tests/integration/test_sim_faults.py TIMEOUT 120)
tw_integration_test(sim_metrics SCRIPT tests/integration/test_sim_metrics.py TIMEOUT 120)
tw_integration_test(sim_engine_http SCRIPT tests/integration/test_sim_engine_http.py TIMEOUT 120)
