// Optional comfort for the subscribe and preferences forms; everything works without it.
// - live "test this rule": counts the last 30 days' matches as you type (GET /rules/test)
// - a time zone guess from the browser on the subscribe form
// - a feedback page records the choice its link was opened for: by a POST sent here, on load,
//   never by the GET (mail scanners open links; they do not press buttons)
"use strict";
(function () {
  var base = (document.querySelector("link[rel=stylesheet]").getAttribute("href") || "")
    .replace(/\/static\/style\.css.*$/, "");

  // as the server's pages say it: never "about 0 a day"
  function perDay(matches, days) {
    var rate = matches / days;
    if (rate >= 0.95) return "about " + rate.toFixed(1) + " a day";
    if (rate * 7 >= 0.95) return "about " + Math.round(rate * 7) + " a week";
    return rate > 0 ? "fewer than one a week" : "none lately";
  }

  function show(box, data) {
    box.textContent = "";
    if (!data) return;
    var p = document.createElement("p");
    if (!data.ok) {
      p.className = "error";
      p.textContent = data.error;
      box.appendChild(p);
      return;
    }
    p.className = "count";
    p.textContent = (data.estimated ? "About " : "") + data.matches +
      (data.matches === 1 ? " paper" : " papers") +
      " in the last " + data.days + " days (" + perDay(data.matches, data.days) + ")";
    box.appendChild(p);
    if (data.examples.length) {
      var ul = document.createElement("ul");
      ul.className = "examples";
      data.examples.slice(0, 3).forEach(function (ex) {
        var li = document.createElement("li");
        var a = document.createElement(ex.url ? "a" : "span");
        if (ex.url) { a.href = ex.url; a.rel = "noopener noreferrer"; }
        a.textContent = ex.title;
        var meta = document.createElement("span");
        meta.className = "meta";
        meta.textContent = " " + ex.source + (ex.published ? " · " + ex.published : "") +
          (ex.why ? " · matched " + ex.why : "");
        li.appendChild(a);
        li.appendChild(meta);
        ul.appendChild(li);
      });
      box.appendChild(ul);
    }
  }

  document.querySelectorAll("input[data-live-test]").forEach(function (input) {
    var box = document.getElementById(input.id + "-msg");
    var timer = null, seq = 0;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var rule = input.value.trim(), mine = ++seq;
        if (!rule) { show(box, null); return; }
        fetch(base + "/rules/test?rule=" + encodeURIComponent(rule), {credentials: "omit"})
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (data) {
            if (mine === seq && data) show(box, data.rules[0]);
          })
          .catch(function () {});
      }, 450);
    });
  });

  var tz = document.querySelector("input[data-guess-timezone]");
  var email = tz && tz.form && tz.form.querySelector("input[name=email]");
  if (email && !email.value && tz.value === "UTC") {
    try {
      var guess = Intl.DateTimeFormat().resolvedOptions().timeZone;
      if (guess && document.querySelector('#time-zones option[value="' + guess + '"]')) {
        tz.value = guess;
      }
    } catch (e) { /* keep the default */ }
  }

  var auto = document.querySelector("form[data-auto-submit]");
  if (auto && !auto.dataset.sent) {
    auto.dataset.sent = "1";
    var button = auto.querySelector("button");
    if (button) button.disabled = true;
    var note = document.querySelector("[data-saving]");  // without scripts: "Press the button"
    if (note) note.textContent = "Saving your choice\u2026";
    auto.submit();
  }
})();
