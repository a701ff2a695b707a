"use strict";
/*
 * Live progress of modem upgrades. Every element with a
 * data-modem-websocket attribute subscribes to that websocket path; the
 * server sends only what changed (status, progress, new log lines).
 */
(function () {
  function wsUrl(path) {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + path;
  }

  function updateProgress(bar, progress, status) {
    if (!bar) {
      return;
    }
    bar.setAttribute("aria-valuenow", progress);
    bar.dataset.status = status;
    var fill = bar.querySelector(".modem-progress-bar");
    fill.style.width = progress + "%";
    fill.className = "modem-progress-bar status-" + status;
    bar.querySelector(".modem-progress-text").textContent = progress + "%";
  }

  function updateOperation(container, data) {
    var selector = '[data-operation-id="' + data.id + '"]';
    var row = container.querySelector("tr.modem-operation" + selector);
    if (!row) {
      return;
    }
    var status = row.querySelector(".modem-status");
    status.textContent = data.status_label;
    status.className = "modem-status status-" + data.status;
    updateProgress(row.querySelector(".modem-progress"), data.progress, data.status);
    if (data.started_at) {
      row.querySelector(".modem-started").textContent = data.started_at;
    }
    if (data.finished_at) {
      row.querySelector(".modem-finished").textContent = data.finished_at;
    }
    if (!data.cancellable) {
      var cancel = row.querySelector(".modem-cancel");
      if (cancel) {
        cancel.remove();
      }
    }
    var log = container.querySelector(
      "tr.modem-operation-log" + selector + " .modem-log",
    );
    if (log && typeof data.log === "string") {
      log.textContent = data.log_offset ? log.textContent + data.log : data.log;
    }
  }

  function updateBatch(container, data) {
    var summary = data.summary;
    var status = container.querySelector(".modem-batch-status");
    status.textContent = data.status_label;
    status.className = "modem-batch-status status-" + data.status;
    container.querySelector(".modem-batch-done").textContent = summary.done;
    container.querySelector(".modem-batch-total").textContent = summary.total;
    updateProgress(container.querySelector(".modem-progress"), summary.progress, data.status);
    summary.statuses.forEach(function (item) {
      var row = container.querySelector('tr[data-status="' + item.value + '"]');
      if (row) {
        row.querySelector(".modem-count").textContent = item.count;
        row.querySelector(".modem-rate").textContent =
          item.rate === null ? "" : item.rate + "%";
      }
    });
    if (data.finished) {
      var cancel = container.querySelector(".modem-cancel-batch");
      if (cancel) {
        cancel.remove();
      }
    }
  }

  function subscribe(container) {
    var socket = new ReconnectingWebSocket(wsUrl(container.dataset.modemWebsocket), null, {
      automaticOpen: false,
      timeoutInterval: 7000,
    });
    socket.onopen = function () {
      container.dataset.modemLive = "connected";
    };
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      (message.operations || []).forEach(function (operation) {
        updateOperation(document, operation);
      });
      if (message.batch) {
        updateBatch(container, message.batch);
      }
    };
    socket.open();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-modem-websocket]").forEach(subscribe);
  });
})();
