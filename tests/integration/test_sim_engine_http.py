"""Engine behaviour seen over HTTP: queueing, preemption under a tiny KV pool, aborts, LoRA."""
import json
import socket
import threading
import time
import unittest

import twtest
from test_sim_common import MODEL, chat, metric_value, metrics


def stats(url):
    return json.loads(twtest.request("GET", url + "/sim/stats")[2])


class SimEngineHttpTest(unittest.TestCase):
    def test_full_kv_cache_queues_and_preempts_but_never_fails(self):
        # 40 blocks = 640 tokens shared by 12 requests growing to ~130 tokens each.
        # Slow enough that the twelve requests overlap even on a busy machine.
        with twtest.Sim(count=1, args=["--speed", "3", "--kv-blocks", "40"]) as sim:
            results = [None] * 12

            def run(i):
                results[i] = chat(sim.urls[0], f"request number {i} " * 5, 100)

            threads = [threading.Thread(target=run, args=(i,)) for i in range(12)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            for st, _, body, raw in results:
                self.assertEqual(st, 200, raw)
                self.assertEqual(body["usage"]["completion_tokens"], 100)
            text = metrics(sim.urls[0])
            self.assertGreater(metric_value(text, "vllm:num_preemptions_total"), 0)
            self.assertEqual(metric_value(text, "vllm:request_success_total",
                                          finished_reason="length"), 12)
            self.assertEqual(metric_value(text, "vllm:kv_cache_usage_perc"), 0)

    def test_max_num_seqs_queues_requests(self):
        with twtest.Sim(count=1, args=["--speed", "1", "--max-num-seqs", "2"]) as sim:
            threads = [threading.Thread(target=chat, args=(sim.urls[0], "q", 200))
                       for _ in range(5)]
            for t in threads:
                t.start()
            # All five arrive well within the ~1.4 s the first two run.
            # (A request is admitted at the next step boundary, so poll for the settled state.)
            def settled():
                text = metrics(sim.urls[0])
                return (metric_value(text, "vllm:num_requests_running"),
                        metric_value(text, "vllm:num_requests_waiting"))
            twtest.wait_until(lambda: settled() == (2, 3), timeout=1.0)
            self.assertEqual(settled(), (2, 3))
            for t in threads:
                t.join(30)
            text = metrics(sim.urls[0])
            self.assertEqual(metric_value(text, "vllm:num_requests_waiting"), 0)
            self.assertGreater(metric_value(text, "vllm:request_queue_time_seconds_sum"), 0)

    def test_client_disconnect_aborts_the_sequence(self):
        with twtest.Sim(count=1, args=["--speed", "1"]) as sim:
            body = json.dumps(twtest.chat_body(MODEL, "long one", 5000)).encode()
            s = socket.create_connection(("127.0.0.1", sim.ports[0]))
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                      str(len(body)).encode() + b"\r\n\r\n" + body)
            time.sleep(0.1)
            self.assertEqual(stats(sim.urls[0])["running"], 1)
            s.close()
            deadline = time.time() + 5
            while time.time() < deadline and stats(sim.urls[0])["running"] != 0:
                time.sleep(0.02)
            text = metrics(sim.urls[0])
            self.assertEqual(metric_value(text, "vllm:num_requests_running"), 0)
            self.assertEqual(metric_value(text, "vllm:request_success_total",
                                          finished_reason="abort"), 1)
            self.assertEqual(metric_value(text, "vllm:kv_cache_usage_perc"), 0)

    def test_lora_requests_wait_for_a_slot(self):
        with twtest.Sim(count=1, args=["--speed", "1", "--max-loras", "1", "--lora", "a",
                                       "--lora", "b"]) as sim:
            threads = [threading.Thread(target=chat, args=(sim.urls[0], "l", 60),
                                        kwargs={"model": m}) for m in ("a", "b")]
            threads[0].start()
            time.sleep(0.05)
            threads[1].start()
            time.sleep(0.1)
            text = metrics(sim.urls[0])
            self.assertIn('running_lora_adapters="a",waiting_lora_adapters="b"', text)
            for t in threads:
                t.join(30)
            self.assertEqual(stats(sim.urls[0])["lora_loads"], 2)

    def test_speed_scales_latency(self):
        with twtest.Sim(count=1, args=["--speed", "10"]) as sim:
            start = time.monotonic()
            chat(sim.urls[0], "x", 100)
            elapsed = time.monotonic() - start
            # 100 tokens x ~7.2 ms engine time / 10 = ~72 ms wall clock.
            self.assertGreater(elapsed, 0.06)
            self.assertLess(elapsed, 1.0)


if __name__ == "__main__":
    twtest.main()
