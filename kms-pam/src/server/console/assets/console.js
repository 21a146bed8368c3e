// kms-pam console: progressive enhancement only; every page works without this file.
"use strict";
(function () {
  // The audit chain verdict last fetched, and when: a live refresh reuses it for a minute
  // (checking a long session's chain verifies thousands of signatures).
  var verdict = null;
  var verifiedAt = 0;
  // <dd data-verify="URL">: the chain check is its own page, fetched after this one; its
  // #chain-verdict replaces the link (which stays if the fetch fails).
  function verify(slot) {
    if (verdict && Date.now() - verifiedAt < 60000) {
      slot.replaceChildren(verdict.cloneNode(true));
      return;
    }
    fetch(slot.getAttribute("data-verify"), { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok || response.redirected) { throw new Error("status " + response.status); }
        return response.text();
      })
      .then(function (text) {
        var found = new DOMParser().parseFromString(text, "text/html").getElementById("chain-verdict");
        if (!found) { return; }
        var span = document.createElement("span");
        span.className = "verdict";
        span.replaceChildren.apply(span, Array.from(found.childNodes).map(function (node) {
          return document.importNode(node, true);
        }));
        verdict = span;
        verifiedAt = Date.now();
        slot.replaceChildren(span.cloneNode(true));
      })
      .catch(function () {});
  }
  // Copy buttons and confirmations inside `root` (the page, or a refreshed <main>).
  function enhance(root) {
    root.querySelectorAll("[data-verify]").forEach(verify);
    // <button data-copy="ID"> copies the text of element ID. Where the browser gives no
    // clipboard (a page served over plain HTTP from another host) or refuses it, the text is
    // selected instead and the button says how to copy it.
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
      var label = button.textContent;
      function say(text) {
        button.textContent = text;
        setTimeout(function () { button.textContent = label; }, 4000);
      }
      function select(target) {
        var range = document.createRange();
        range.selectNodeContents(target);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        say("Selected: press Ctrl+C");
      }
      button.addEventListener("click", function () {
        var target = document.getElementById(button.getAttribute("data-copy"));
        if (!target) { return; }
        if (!navigator.clipboard) { select(target); return; }
        navigator.clipboard.writeText(target.textContent).then(function () {
          say("Copied");
        }, function () { select(target); });
      });
    });
    // <form data-confirm="QUESTION"> asks before it is sent. Without this file the form is
    // sent at once (the server still checks rights and origin).
    root.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  }
  enhance(document);
  // Live refresh: <body data-refresh="SECONDS"> (an active session) fetches the page again and
  // swaps its <main> in place, without a reload, unless a <details> element is open (the reader
  // is looking at something). It stops once the page no longer asks for it (the session
  // ended); if the fetch fails it falls back to a plain reload.
  var every = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (every > 0) {
    var timer = setInterval(function () {
      if (document.querySelector("details[open]")) { return; }
      fetch(window.location.href, { credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok || response.redirected) { throw new Error("status " + response.status); }
          return response.text();
        })
        .then(function (text) {
          var next = new DOMParser().parseFromString(text, "text/html");
          var main = next.querySelector("main");
          if (!main) { throw new Error("no main"); }
          document.querySelector("main").replaceWith(main);
          document.title = next.title;
          enhance(main);
          if (!next.body.hasAttribute("data-refresh")) { clearInterval(timer); }
        })
        .catch(function () { window.location.reload(); });
    }, every * 1000);
  }
})();
