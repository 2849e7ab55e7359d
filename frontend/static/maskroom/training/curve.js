// The training curve of a job: loss and validation loss per epoch on the left
// axis, the validation IoU of object pixels (or a detector's F1 of its boxes)
// on the right, drawn by Chart.js
// (window.Chart, loaded before the modules). One chart per canvas, redrawn in
// place as the job's curve grows.

let chart = null;

export function drawCurve(canvas, curve) {
  const { Chart } = window;
  const labels = curve.map((point) => String(point.epoch));
  const datasets = [
    { label: "loss", data: curve.map((p) => p.loss), borderColor: "#2563eb", yAxisID: "loss" },
    { label: "validation loss", data: curve.map((p) => p.val_loss), borderColor: "#f59e0b", yAxisID: "loss" },
    { label: "validation IoU", data: curve.map((p) => p.val_iou), borderColor: "#10b981", yAxisID: "iou" },
    { label: "validation F1 of boxes", data: curve.map((p) => p.val_f1), borderColor: "#a855f7", yAxisID: "iou" },
  ];
  if (chart === null || chart.canvas !== canvas) {
    chart = new Chart(canvas, {
      type: "line",
      data: { labels, datasets },
      options: {
        animation: false,
        scales: {
          x: { title: { display: true, text: "epoch" } },
          loss: { position: "left", beginAtZero: true, title: { display: true, text: "loss" } },
          iou: { position: "right", min: 0, max: 1, title: { display: true, text: "IoU or F1" }, grid: { drawOnChartArea: false } },
        },
      },
    });
  } else {
    chart.data.labels = labels;
    chart.data.datasets.forEach((dataset, i) => {
      dataset.data = datasets[i].data;
    });
    chart.update();
  }
  canvas.dataset.points = String(curve.length);
}
