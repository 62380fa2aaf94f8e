/* Live petition counts and signing in place, on the site's own origin; no other host is contacted.
 *
 * The server includes each petition's count, state and, while it is open, the sign form in the page
 * (nginx's SSI, or the embedded run). Every [data-petition] card refreshes its count and state from the
 * service's JSON API. A [data-petition-sign] container holds the sign form; here it is sent without
 * leaving the page, and the service's answer (the thanks text, or the form with its errors) takes its
 * place. Without JavaScript the form posts as any form does. No token, no cookie: the browser's own Sec-Fetch-Site tells the service
 * that the post comes from this site.
 * Material's instant navigation swaps pages without reloading, so all of it runs on every document$.
 */
(function () {
  "use strict";

  var FRAGMENT = { "X-Petition-Fragment": "1" };
  var UNAVAILABLE_COUNT = "The live count is unavailable for the moment.";
  var UNAVAILABLE_SIGNING =
    "Signing is unavailable for the moment. Please try again in a little while.";

  function say(element, text, role) {
    var p = document.createElement("p");
    p.className = "petition-unavailable";
    p.setAttribute("role", role || "status");
    p.textContent = text;
    element.appendChild(p);
    return p;
  }

  function day(iso) {
    return new Date(iso + "T00:00:00Z").toLocaleDateString("en-GB", {
      day: "numeric", month: "long", year: "numeric", timeZone: "UTC",
    });
  }

  function stateText(petition) {
    if (petition.state === "open") return "Open for signatures until " + day(petition.closes_at) + ".";
    if (petition.state === "not_open") return "Opens for signatures on " + day(petition.opens_at) + ".";
    return "Closed on " + day(petition.closed_on) + ": it takes no more signatures.";
  }

  function showCount(card) {
    // The server put the count and state in the page (at most a minute old); this makes them current.
    var box = card.querySelector("[data-petition-live]");
    if (!box || card.dataset.petitionLoaded) return;
    card.dataset.petitionLoaded = "1";
    // Revalidate (a 304 while nothing changed): a signer who just confirmed expects to be counted.
    fetch(card.dataset.api, { headers: { Accept: "application/json" }, cache: "no-cache" })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status);
        return response.json();
      })
      .then(function (petition) {
        var count = petition.signature_count;
        box.querySelector("[data-petition-number]").textContent = count.toLocaleString("en");
        box.querySelector("[data-petition-noun]").textContent = count === 1 ? "signature" : "signatures";
        var progress = box.querySelector("[data-petition-progress]");
        progress.max = petition.goal;
        progress.value = Math.min(count, petition.goal);
        progress.textContent = Math.floor((100 * count) / petition.goal) + "%";
        if (petition.state !== box.dataset.state) showState(box, petition);
      })
      .catch(function () {
        say(card, UNAVAILABLE_COUNT);
      });
  }

  function showState(box, petition) {
    // Changed since the server's copy was made: never invite a signature the service would refuse.
    box.dataset.state = petition.state;
    box.querySelector("[data-petition-state]").textContent = stateText(petition);
    if (petition.state === "open") return; // the form comes with the next load of the page
    var actions = box.querySelector(".petition-live__actions");
    if (actions) actions.remove();
    document.querySelectorAll("[data-petition-sign]").forEach(function (container) {
      var form = container.querySelector("form[data-petition-form]");
      if (!form || !form.action.endsWith("/petitions/" + petition.slug + "/sign")) return;
      container.textContent = "";
      say(container, stateText(petition));
    });
  }

  function focusResult(container) {
    var target = container.querySelector(".error-summary, [data-petition-result]");
    if (target) {
      target.setAttribute("tabindex", "-1");
      target.focus();
    }
  }

  function load(container, response) {
    // The service marks its fragments. A marked 4xx explains itself (invalid input, a closed petition,
    // too many tries); a 5xx, or anything unmarked (a proxy's error page, a static 404), is a fault.
    if (response.status >= 500 || response.headers.get("X-Petition-Fragment") !== "1") {
      throw new Error(response.status);
    }
    return response.text().then(function (html) {
      container.innerHTML = html;
      wire(container);
      return container;
    });
  }

  function unavailable(container) {
    // The form and what was typed stay: the signer can send it again in a moment.
    var old = container.querySelector(".petition-unavailable");
    if (old) old.remove();
    var alert = say(container, UNAVAILABLE_SIGNING, "alert");
    container.insertBefore(alert, container.firstChild);
    var button = container.querySelector("form [type=submit]");
    if (button) button.disabled = false;
  }

  function wire(container) {
    var form = container.querySelector("form[data-petition-form]");
    if (!form) return;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = form.querySelector("[type=submit]");
      if (button) button.disabled = true;
      fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: FRAGMENT,
        credentials: "omit", // nothing to send: visitors have no cookie
      })
        .then(function (response) {
          return load(container, response);
        })
        .then(focusResult)
        .catch(function () {
          unavailable(container);
        });
    });
  }

  function start() {
    document.querySelectorAll("[data-petition][data-api]").forEach(showCount);
    document.querySelectorAll("[data-petition-sign]").forEach(function (container) {
      if (container.dataset.petitionWired) return;
      container.dataset.petitionWired = "1";
      wire(container);
    });
  }

  if (typeof document$ !== "undefined") {
    document$.subscribe(start); // Material: every page, instant navigation included
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
