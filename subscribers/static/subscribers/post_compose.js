/* Live character count of a post's text against WhatsApp's limit of 4,096 characters
 * (https://developers.facebook.com/docs/whatsapp/cloud-api/messages/text-messages).
 * The server checks the same limit (topics.models.POST_BODY_MAX); this only tells the editor
 * while typing. Characters are counted as Python and the database count them (code points,
 * so an emoji is one), on the text with "\n" line breaks, as the form stores it. */
(function () {
  "use strict";

  function format(n) {
    return n.toLocaleString(document.documentElement.lang || undefined);
  }

  function attach(box) {
    var max = parseInt(box.dataset.max, 10);
    var shortMax = parseInt(box.dataset.shortMax, 10);
    var counter = document.createElement("div");
    counter.id = "post-body-counter";
    counter.className = "help";
    counter.setAttribute("aria-live", "polite");
    box.insertAdjacentElement("afterend", counter);

    function update() {
      var length = Array.from(box.value).length;
      var parts = [format(length) + " / " + format(max) + " " + box.dataset.textCount];
      var over = length - max;
      if (over > 0) {
        parts.push(box.dataset.textOver.replace("%(n)s", format(over)));
      } else if (length > shortMax) {
        parts.push(box.dataset.textTemplateCut);
      }
      counter.textContent = parts.join(" — ");
      counter.dataset.length = String(length);
      counter.style.color = over > 0 ? "#ba2121" : "";
      counter.style.fontWeight = over > 0 ? "bold" : "";
    }

    box.addEventListener("input", update);
    update();
  }

  function start() {
    document.querySelectorAll("textarea[data-counter=post-body]").forEach(attach);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
