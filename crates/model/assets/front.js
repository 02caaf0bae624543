// The front page's behaviour (crates/model/src/front.rs). The page works without it except
// for sending; with it, the curl lines name the origin this browser used and follow the
// edited bodies, Copy copies them, and each form sends its body and shows the answer.
"use strict";
(function () {
  const quote = (s) => "'" + s.replace(/'/g, "'\\''") + "'";
  // JSON on one line, with spaces after commas and colons.
  const oneLine = (v) => {
    if (v === null || typeof v !== "object") return JSON.stringify(v);
    if (Array.isArray(v)) return "[" + v.map(oneLine).join(", ") + "]";
    return "{" + Object.keys(v).map((k) => JSON.stringify(k) + ": " + oneLine(v[k])).join(", ") + "}";
  };
  // Indented JSON that keeps what fits on a line on one line (a tensor's data, a shape).
  const pretty = (v, pad = "") => {
    const flat = oneLine(v);
    if (v === null || typeof v !== "object" || pad.length + flat.length <= 60) return flat;
    const inner = pad + "  ";
    if (Array.isArray(v)) {
      return "[\n" + v.map((x) => inner + pretty(x, inner)).join(",\n") + "\n" + pad + "]";
    }
    const fields = Object.keys(v).map((k) => inner + JSON.stringify(k) + ": " + pretty(v[k], inner));
    return "{\n" + fields.join(",\n") + "\n" + pad + "}";
  };
  for (const el of document.querySelectorAll(".origin")) {
    el.textContent = location.origin;
  }
  // grpcurl names host:port, no scheme.
  for (const el of document.querySelectorAll(".host")) {
    el.textContent = location.host;
  }
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", async () => {
      const pre = button.parentElement.querySelector("pre.curl");
      try {
        await navigator.clipboard.writeText(pre.textContent);
        button.textContent = "Copied";
      } catch (_) {
        // No clipboard outside a secure context: select the text for Ctrl-C instead.
        const range = document.createRange();
        range.selectNodeContents(pre);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        button.textContent = "Selected";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
  }
  for (const form of document.querySelectorAll("form.try")) {
    const area = form.querySelector("textarea");
    const answer = form.querySelector("pre.answer");
    const block = form.closest(".try-block");
    const curlBody = block ? block.querySelector(".curl .body") : null;
    area.addEventListener("input", () => {
      if (curlBody) curlBody.textContent = quote(area.value);
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      answer.className = "answer";
      answer.dataset.status = "";
      answer.textContent = "…";
      const started = performance.now();
      try {
        // A server with --auth-token-file answers 401 without a token: ask for it once,
        // keep it for this tab, and send it with every call.
        const send = (token) => {
          const headers = { "Content-Type": "application/json" };
          if (token) headers["Authorization"] = "Bearer " + token;
          return fetch(form.dataset.path, {
            method: form.dataset.method || "POST",
            headers,
            body: area.value,
          });
        };
        let token = sessionStorage.getItem("serve-token");
        let res = await send(token);
        if (res.status === 401) {
          const given = window.prompt(
            "This server needs a token (Authorization: Bearer, from its --auth-token-file):");
          if (given) {
            token = given.trim();
            sessionStorage.setItem("serve-token", token);
            res = await send(token);
          }
        }
        const text = await res.text();
        let shown = text;
        try {
          shown = pretty(JSON.parse(text));
        } catch (_) {
          // Not JSON: shown as it came.
        }
        const ms = (performance.now() - started).toFixed(1);
        answer.textContent = res.status + " " + res.statusText + " · " + ms + " ms\n" + shown;
        answer.className = "answer " + (res.ok ? "ok" : "error");
        answer.dataset.status = String(res.status);
      } catch (err) {
        answer.textContent = "the request failed: " + err;
        answer.className = "answer error";
        answer.dataset.status = "0";
      }
    });
  }
})();
