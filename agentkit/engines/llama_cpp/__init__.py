"""The in-process llama.cpp engine (llama-cpp-python), agentkit's default.

`engine` runs predictions; `build` compiles llama-cpp-python for this CPU; `models` finds and
assembles model files; `sampling` is the grammar-aware sampler; `prompting` renders chats;
`json_mode`, `native_tools` and `tool_modes` turn tool calls into grammars or parse a model's
own tool-call format. Importing this package does not import llama_cpp.
"""
