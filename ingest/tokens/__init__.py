"""Re-count tokens the way the API would, for calls whose logs lack usage.

Modules: `vocab` (offline, hash-checked vocabularies), `models` (model -> encoding and message
framing), `functions` (tool definitions as the TypeScript namespace the model reads), `render`
(request/response bodies -> counting plans, written by `chat`, `responses`, `response_format` and
`outputs` into a `plan.Plan`), `counter` (the memoized batch counter and the entry points).
Counting follows OpenAI's cookbook "How to count tokens with tiktoken", the vision guide (image
tiles), and API-reported counts from public sources (tests/accuracy/).
"""

from .counter import TokenCounter, count_output, count_request_input, fill_estimates
from .functions import Namespace, describe_namespace, render_namespace
from .models import Framing, base_model, encoding_for_model, framing_for, is_reasoning_model
from .render import Plan, plan_input, plan_output_texts, response_output_texts, response_tool_calls
from .vocab import VOCABULARIES, get_encoding, load_encoding

__all__ = [
    "VOCABULARIES", "Framing", "Namespace", "Plan", "TokenCounter", "base_model", "count_output", "count_request_input",
    "describe_namespace", "encoding_for_model", "fill_estimates", "framing_for", "get_encoding", "is_reasoning_model",
    "load_encoding", "plan_input", "plan_output_texts", "render_namespace", "response_output_texts",
    "response_tool_calls",
]
