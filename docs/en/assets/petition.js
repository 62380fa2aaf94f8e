/* Live petition counts and signing in place, on the site's own origin; no other host is contacted.
 *
 * Every [data-petition] card gets its count from the service's JSON API. A [data-petition-sign]
 * container replaces its plain "Sign the petition" link with the service's form (and its CSRF token)
 * and submits it without leaving the page. Without JavaScript, or with the service down, the page
 * still reads well: the link leads to the full-page form, or a plain sentence says what is missing.
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

  function showCount(card) {
    var box = card.querySelector("[data-petition-count]");
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
        var progress = box.querySelector("[data-petition-progress]");
        progress.max = petition.goal;
        progress.value = Math.min(count, petition.goal);
        progress.textContent = Math.floor((100 * count) / petition.goal) + "%";
        box.hidden = false;
      })
      .catch(function () {
        say(card, UNAVAILABLE_COUNT);
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
    container.innerHTML = "";
    say(container, UNAVAILABLE_SIGNING, "alert");
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
        credentials: "same-origin",
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

  function showForm(container) {
    if (container.dataset.petitionLoaded) return;
    container.dataset.petitionLoaded = "1";
    fetch(container.dataset.petitionSign, { headers: FRAGMENT, credentials: "same-origin" })
      .then(function (response) {
        return load(container, response);
      })
      .catch(function () {
        unavailable(container);
      });
  }

  function start() {
    document.querySelectorAll("[data-petition][data-api]").forEach(showCount);
    document.querySelectorAll("[data-petition-sign]").forEach(showForm);
  }

  if (typeof document$ !== "undefined") {
    document$.subscribe(start); // Material: every page, instant navigation included
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
