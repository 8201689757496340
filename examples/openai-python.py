"""The official OpenAI Python client, pointed at this server.

Usage: JETTY_API_KEY=jrk_... python3 examples/openai-python.py [BASE_URL]    (pip install openai)
"""
import os
import pathlib
import sys

from openai import OpenAI

base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
client = OpenAI(base_url=f"{base}/v1", api_key=os.environ["JETTY_API_KEY"])
runbook = (pathlib.Path(__file__).parent / "hello.md").read_text()

completion = client.chat.completions.create(
    model="claude-sonnet-4-6",
    messages=[
        {"role": "system", "content": runbook},
        {"role": "user", "content": "Execute the runbook."},
    ],
    extra_body={"jetty": {"runbook": True, "model_provider": "simulated"}},
)
meta = completion.model_extra["jetty_metadata"]
print(completion.choices[0].message.content)
print(meta["status"], meta["trajectory_id"], [a["path"] for a in meta["artifacts"]])
print("tokens:", completion.usage.total_tokens)
