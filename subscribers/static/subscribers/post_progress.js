// The progress panel of a post being sent (admin/topics/post/progress.html) refreshes itself
// every 2 s while the post is sending. A file rather than an inline script: the
// Content-Security-Policy allows no inline script without the response's nonce.
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var box = document.getElementById("post-progress");
  if (!box) { return; }
  function refresh() {
    fetch(box.dataset.url, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (d) {
      document.getElementById("progress-bar").style.width = d.percent + "%";
      document.getElementById("progress-percent").textContent = d.percent;
      document.getElementById("progress-finish").textContent = d.finish || "—";
      var quiet = d.quiet || "";
      document.getElementById("progress-quiet").textContent = quiet.charAt(0).toUpperCase() + quiet.slice(1);
      document.getElementById("progress-paused").textContent = d.paused ? d.paused : "";
      box.querySelectorAll("[data-count]").forEach(function (el) { el.textContent = d.counters[el.dataset.count]; });
      var rows = d.failures.map(function (f) {
        var tr = document.createElement("tr");
        [f.code || "—", f.count, f.why].forEach(function (v) { var td = document.createElement("td"); td.textContent = v; tr.appendChild(td); });
        return tr;
      });
      document.getElementById("progress-failures").replaceChildren.apply(document.getElementById("progress-failures"), rows);
      if (d.status === "sending") { setTimeout(refresh, 2000); }
    }).catch(function () { setTimeout(refresh, 5000); });
  }
  setTimeout(refresh, 2000);
});
