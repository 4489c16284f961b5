// The chat page: AG-UI events over SSE from the app, rendered as text only (textContent,
// never innerHTML): what the model writes is untrusted.
"use strict";

const state = { token: "", session: "", busy: false, decisions: new Map(), interrupts: [] };
const $ = (id) => document.getElementById(id);

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function status(text) { $("status").textContent = text; }

function setBusy(busy) {
  state.busy = busy;
  $("message").disabled = busy || !state.session;
  $("send").disabled = busy || !state.session;
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + state.token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = JSON.stringify((await response.json()).detail); } catch (e) { /* not JSON */ }
    throw new Error(response.status + " " + detail);
  }
  return response;
}

// -- rendering --------------------------------------------------------------------------------

const textNodes = new Map();   // messageId -> element
const toolNodes = new Map();   // toolCallId -> element

function addMessage(role, text) {
  const node = element("div", "msg " + role, text);
  $("messages").appendChild(node);
  return node;
}

function toolCall(id, name, args) {
  let node = toolNodes.get(id);
  if (!node) {
    node = element("div", "msg tool");
    node.dataset.toolCallId = id;
    node.appendChild(element("span", "name", name));
    node.appendChild(element("span", "args", args || ""));
    $("messages").appendChild(node);
    toolNodes.set(id, node);
  }
  return node;
}

function toolResult(id, content, error) {
  const node = toolCall(id, "?", "");
  node.classList.remove("waiting");
  node.querySelector(".controls")?.remove();
  const result = element("span", "result", (error ? "error: " : "→ ") + content);
  node.appendChild(result);
}

function askApproval(interrupts) {
  state.interrupts = interrupts;
  state.decisions = new Map();
  for (const interrupt of interrupts) {
    const node = toolCall(interrupt.toolCallId, "?", "");
    node.classList.add("waiting");
    const controls = element("span", "controls");
    const approve = element("button", "approve", "Approve");
    const deny = element("button", "deny", "Deny");
    approve.type = deny.type = "button";
    approve.addEventListener("click", () => decide(interrupt.id, controls, true));
    deny.addEventListener("click", () => decide(interrupt.id, controls, false));
    controls.append(approve, deny);
    node.appendChild(controls);
  }
  status("waiting for your approval");
}

function decide(id, controls, approved) {
  state.decisions.set(id, approved);
  controls.replaceChildren(element("span", "decided", approved ? "approved" : "denied"));
  if (state.decisions.size === state.interrupts.length) {
    const resume = [...state.decisions].map(([interruptId, ok]) => ok
      ? { interruptId, status: "resolved", payload: { approved: true } }
      : { interruptId, status: "resolved", payload: { approved: false, reason: "The user denied this call." } });
    state.interrupts = [];
    run("/api/sessions/" + encodeURIComponent(state.session) + "/resume", { resume });
  }
}

function handle(event) {
  switch (event.type) {
    case "RUN_STARTED": status("thinking…"); break;
    case "TEXT_MESSAGE_START": textNodes.set(event.messageId, addMessage("assistant", "")); break;
    case "TEXT_MESSAGE_CONTENT": {
      const node = textNodes.get(event.messageId) || addMessage("assistant", "");
      textNodes.set(event.messageId, node);
      node.textContent += event.delta;
      break;
    }
    case "TEXT_MESSAGE_END": break;
    case "TOOL_CALL_START": toolCall(event.toolCallId, event.toolCallName, ""); break;
    case "TOOL_CALL_ARGS": toolNodes.get(event.toolCallId).querySelector(".args").textContent += event.delta; break;
    case "TOOL_CALL_END": break;
    case "TOOL_CALL_RESULT": toolResult(event.toolCallId, event.content, false); break;
    case "RUN_FINISHED":
      if (event.outcome && event.outcome.type === "interrupt") askApproval(event.outcome.interrupts);
      else status("");
      break;
    case "RUN_ERROR": addMessage("error", "error: " + event.message); status(""); break;
    default: break;  // reasoning and other events are not shown
  }
}

// -- SSE over fetch (EventSource cannot POST or send a header) ---------------------------------

async function run(path, body) {
  setBusy(true);
  try {
    const response = await api("POST", path, body);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (data) handle(JSON.parse(data));
      }
    }
  } catch (error) {
    addMessage("error", String(error.message || error));
    status("");
  } finally {
    setBusy(false);
  }
}

// -- history and sessions --------------------------------------------------------------------

async function loadHistory() {
  $("messages").replaceChildren();
  textNodes.clear();
  toolNodes.clear();
  const history = await (await api("GET", "/api/sessions/" + encodeURIComponent(state.session))).json();
  for (const message of history.messages) {
    if (message.role === "user") addMessage("user", message.content);
    else if (message.role === "assistant") {
      if (message.content) addMessage("assistant", message.content);
      for (const call of message.toolCalls || []) toolCall(call.id, call.function.name, call.function.arguments);
    } else if (message.role === "tool") toolResult(message.toolCallId, message.content, Boolean(message.error));
  }
  if (history.interrupts.length) askApproval(history.interrupts);
  else status("");
}

async function newSession() {
  const created = await (await api("POST", "/api/sessions")).json();
  state.session = created.id;
  localStorage.setItem("agentkit.session", state.session);
  $("messages").replaceChildren();
  status("new chat");
}

async function signIn() {
  state.token = $("token").value || localStorage.getItem("agentkit.token") || "";
  if (!state.token) return;
  localStorage.setItem("agentkit.token", state.token);
  state.session = localStorage.getItem("agentkit.session") || "";
  try {
    if (state.session) await loadHistory();
    else await newSession();
  } catch (error) {
    if (String(error.message).startsWith("404")) await newSession();
    else { addMessage("error", String(error.message)); return; }
  }
  document.body.dataset.ready = "1";
  setBusy(false);
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin").addEventListener("submit", (event) => { event.preventDefault(); signIn(); });
  $("new-session").addEventListener("click", () => newSession().catch((e) => addMessage("error", String(e.message))));
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("message").value;
    if (!text || state.busy) return;
    $("message").value = "";
    addMessage("user", text);
    run("/api/sessions/" + encodeURIComponent(state.session) + "/messages", { message: text });
  });
  if (localStorage.getItem("agentkit.token")) signIn();
});
