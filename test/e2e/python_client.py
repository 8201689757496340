"""The official OpenAI Python client against the runbook server: streaming and not.

Usage: OPENAI_API_KEY=<collection key> python3 python_client.py BASE_URL RUNBOOK_FILE
Prints one JSON object with what the client saw.
"""
import json
import sys

from openai import OpenAI

base_url, runbook_path = sys.argv[1], sys.argv[2]
runbook = open(runbook_path, encoding="utf-8").read()
client = OpenAI(base_url=base_url)  # the key comes from OPENAI_API_KEY, as users set it
jetty = {"runbook": True, "model_provider": "simulated"}
messages = [
    {"role": "system", "content": runbook},
    {"role": "user", "content": "Execute the runbook."},
]

stream = client.chat.completions.create(
    model="claude-sonnet-4-6", messages=messages, stream=True, extra_body={"jetty": jetty}
)
content, reasoning, ids, finish, trajectory_id = "", "", set(), None, None
for chunk in stream:
    ids.add(chunk.id)
    extra = chunk.model_extra or {}
    meta = extra.get("jetty_metadata")
    if meta and not trajectory_id:
        trajectory_id = meta["trajectory_id"]
    if chunk.choices:
        delta = chunk.choices[0].delta
        content += delta.content or ""
        reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
        finish = chunk.choices[0].finish_reason or finish

completion = client.chat.completions.create(
    model="claude-sonnet-4-6", messages=messages, stream=False, extra_body={"jetty": jetty}
)
failed = None
try:
    for _ in client.chat.completions.create(
        model="claude-sonnet-4-6",
        messages=[{"role": "system", "content": "# Fails\n```simulate\n- fail: 401\n```\n"}],
        stream=True,
        extra_body={"jetty": jetty},
    ):
        pass
except Exception as exc:  # the SDK raises APIError from the stream's error event
    failed = type(exc).__name__ + ": " + str(exc)

print(json.dumps({
    "stream": {"content": content, "reasoning": reasoning, "ids": sorted(ids), "finish": finish, "trajectory_id": trajectory_id},
    "completion": {
        "id": completion.id,
        "content": completion.choices[0].message.content,
        "usage": completion.usage.model_dump() if completion.usage else None,
        "jetty_metadata": (completion.model_extra or {}).get("jetty_metadata"),
    },
    "failed": failed,
}))
