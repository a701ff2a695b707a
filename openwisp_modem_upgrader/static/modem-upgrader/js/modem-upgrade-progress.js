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

  function progressHtml() {
    return (
      '<div class="modem-progress" role="progressbar" aria-valuemin="0" ' +
      'aria-valuemax="100" aria-valuenow="0"><span class="modem-progress-bar">' +
      '</span><em class="modem-progress-text">0%</em></div>'
    );
  }

  function cell(row, className) {
    var td = document.createElement("td");
    if (className) {
      td.className = className;
    }
    row.appendChild(td);
    return td;
  }

  // an operation created after the page was drawn (a batch's fan-out):
  // added to the first page while it holds less than a page of them
  function addOperationRow(data) {
    var table = document.querySelector("table.modem-operations[data-live-rows]");
    if (!table || !data.device) {
      return null;
    }
    var body = table.tBodies[0];
    var limit = parseInt(table.dataset.liveRows, 10) || 0;
    var filter = table.dataset.statusFilter;
    if (body.querySelectorAll("tr.modem-operation").length >= limit) {
      return null;
    }
    if (filter && filter !== data.status) {
      return null;
    }
    var empty = body.querySelector("tr.modem-no-operations");
    if (empty) {
      empty.remove();
    }
    var row = document.createElement("tr");
    row.className = "modem-operation";
    row.dataset.operationId = data.id;
    var link = document.createElement("a");
    link.href = table.dataset.operationUrl.replace(
      "00000000-0000-0000-0000-000000000000",
      data.id,
    );
    link.textContent = data.device;
    cell(row).appendChild(link);
    cell(row, "modem-status");
    cell(row).innerHTML = progressHtml();
    cell(row, "modem-started").textContent = "-";
    cell(row, "modem-finished").textContent = "-";
    body.appendChild(row);
    return row;
  }

  function updateOperation(container, data) {
    var selector = '[data-operation-id="' + data.id + '"]';
    var row =
      container.querySelector("tr.modem-operation" + selector) ||
      addOperationRow(data);
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
    var stages = container.querySelector(".modem-stages" + selector);
    if (stages && data.stages) {
      stages.querySelectorAll(".modem-stage").forEach(function (stage, index) {
        stage.className = "modem-stage stage-" + (data.stages[index] || "todo");
      });
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
    var bytes = container.querySelector(".modem-batch-bytes-sent");
    if (bytes && summary.bytes_sent_label) {
      bytes.textContent = summary.bytes_sent_label;
      bytes.title = summary.bytes_sent + " bytes";
    }
    if (data.rollout) {
      updateRollout(container, data);
    }
    if (data.finished || data.can_cancel === false) {
      var cancel = container.querySelector(".modem-cancel-batch");
      if (cancel) {
        cancel.remove();
      }
    }
  }

  function setText(box, selector, text) {
    var element = box.querySelector(selector);
    if (element) {
      element.textContent = text;
    }
  }

  function show(element, visible) {
    if (element) {
      element.hidden = !visible;
    }
  }

  // the rollout box and the buttons that apply now (the server decides)
  function updateRollout(container, data) {
    var box = container.querySelector(".modem-rollout");
    if (!box) {
      return;
    }
    var rollout = data.rollout;
    box.dataset.rolloutState = rollout.state;
    var state = box.querySelector(".modem-rollout-state");
    state.textContent = rollout.label;
    state.className = "modem-rollout-state rollout-" + rollout.state;
    setText(box, ".modem-rollout-reason", rollout.reason);
    show(box.querySelector(".modem-rollout-reason-line"), !!rollout.reason);
    setText(box, ".modem-rollout-current-wave", rollout.current_wave);
    setText(box, ".modem-rollout-waves", rollout.waves);
    show(box.querySelector(".modem-rollout-wave-line"), rollout.waves > 0);
    setText(box, ".modem-rollout-in-flight-count", rollout.in_flight);
    setText(box, ".modem-rollout-waiting-count", rollout.waiting);
    show(box.querySelector(".modem-rollout-pause"), data.can_pause);
    var resume = box.querySelector(".modem-rollout-resume");
    if (resume) {
      resume.textContent = data.resume_label || "";
      show(resume, !!data.resume_label);
    }
    show(box.querySelector(".modem-rollout-retry"), data.can_retry_failed);
  }

  // buttons that act on many devices ask first
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-modem-confirm]");
    if (button && !window.confirm(button.dataset.modemConfirm)) {
      event.preventDefault();
    }
  });

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
