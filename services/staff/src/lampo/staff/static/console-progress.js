// The staff console: a request's progress section refreshes itself while the request moves.
// The page works without this script (it has a refresh link); the CSP allows no inline script,
// so this is the console's only script, served from /static.
(function () {
  "use strict";
  var section = document.querySelector("[data-progress]");
  if (!section || !window.fetch) {
    return;
  }
  var url = section.getAttribute("data-progress");
  var status = section.getAttribute("data-status");
  var every = 1000 * (parseInt(section.getAttribute("data-every"), 10) || 2);
  var shown = null;

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { accept: "text/html" } })
      .then(function (response) {
        if (response.status !== 200) {
          return null;
        }
        var now = response.headers.get("x-request-status");
        return response.text().then(function (html) {
          return { html: html, status: now };
        });
      })
      .then(function (answer) {
        if (answer === null) {
          return; // logged out or refused: the next page load says why
        }
        if (answer.status !== status) {
          window.location.reload(); // a new state: its facts and actions change too
          return;
        }
        if (answer.html !== shown) {
          shown = answer.html; // only a change is written (and read out by screen readers)
          section.innerHTML = answer.html;
        }
        window.setTimeout(poll, every);
      })
      .catch(function () {
        window.setTimeout(poll, every * 5);
      });
  }

  window.setTimeout(poll, every);
})();
