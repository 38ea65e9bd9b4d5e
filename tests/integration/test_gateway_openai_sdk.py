"""The official OpenAI SDK (npm package `openai`) works against tokenway unchanged."""
import json
import os
import shutil
import subprocess
import unittest

import twtest
from twtest import MODEL, Gateway, Sim, gateway_yaml

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")


class OpenAiSdkTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("node") or not shutil.which("npm"):
            raise unittest.SkipTest("node and npm are needed (scripts/setup.sh installs them)")
        if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "openai")):
            proc = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                                  capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                raise RuntimeError("npm ci failed: " + proc.stderr[-2000:])

    def test_streaming_and_non_streaming_chat(self):
        with Sim(count=2, args=["--speed", "50"]) as sim, Gateway(gateway_yaml(sim.urls)) as gw:
            proc = subprocess.run(["node", "openai_compat.mjs", gw.base + "/v1", MODEL], cwd=NODE_DIR,
                                  capture_output=True, text=True, timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            seen = json.loads(proc.stdout.strip().splitlines()[-1])
        self.assertTrue(seen["plain"]["content"])
        self.assertEqual(seen["plain"]["usage"]["completion_tokens"], 12)
        self.assertGreater(seen["plain"]["usage"]["prompt_tokens"], 0)
        self.assertIn(seen["plain"]["finish"], ("length", "stop"))
        self.assertTrue(seen["stream"]["content"])
        self.assertEqual(seen["stream"]["usage"]["completion_tokens"], 12)
        self.assertEqual(seen["notFound"]["status"], 404)
        self.assertEqual(seen["notFound"]["code"], "model_not_found")


if __name__ == "__main__":
    twtest.main()
