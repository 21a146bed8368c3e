// kms-pam console: progressive enhancement only; every page works without this file.
"use strict";
(function () {
  // Copy buttons: <button data-copy="ID"> copies the text of element ID.
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var target = document.getElementById(button.getAttribute("data-copy"));
      if (!target || !navigator.clipboard) { return; }
      navigator.clipboard.writeText(target.textContent).then(function () {
        var label = button.textContent;
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = label; }, 1500);
      });
    });
  });
  // Confirmations: <form data-confirm="QUESTION"> asks before it is sent. Without this file
  // the form is sent at once (the server still checks rights and origin).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
  // Live refresh: <body data-refresh="SECONDS"> reloads while a session is active, unless a
  // <details> element is open (the reader is looking at something).
  var every = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (every > 0) {
    setInterval(function () {
      if (!document.querySelector("details[open]")) { window.location.reload(); }
    }, every * 1000);
  }
})();
