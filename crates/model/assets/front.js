// The front page's behaviour (crates/model/src/front.rs). The page works without it except
// for sending; with it, the curl lines name the origin this browser used and follow the
// edited bodies, Copy copies them, and each form sends its body and shows the answer.
"use strict";
(function () {
  const quote = (s) => "'" + s.replace(/'/g, "'\\''") + "'";
  for (const el of document.querySelectorAll(".origin")) {
    el.textContent = location.origin;
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
        const res = await fetch(form.dataset.path, {
          method: form.dataset.method || "POST",
          headers: { "Content-Type": "application/json" },
          body: area.value,
        });
        const text = await res.text();
        let shown = text;
        try {
          shown = JSON.stringify(JSON.parse(text), null, 2);
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
