// The database's own EBS volume on an app node: mounted at every boot from bootcmd, and its
// filesystem grown in place when `dataVolumeGiB` grows the volume (issue 20).
import { BundlePart, unitFile } from "./bundle";
import { Command } from "./cloudConfig";
import { DB_DATA_DIR } from "./database";
import { renderShipped, shippedFile } from "./template";

/**
 * Runs the shipped data-volume script from bootcmd, before write_files and packages exist; inline,
 * so without its comment lines (the shipped file keeps them): the bootstrap stays small.
 */
export function dataVolumeCommand(device: string): Command {
  const script = shippedFile("data-volume.sh")
    .split("\n")
    .filter((line) => !/^\s*#/.test(line))
    .join("\n");
  return ["bash", "-c", script, "webstack-data-volume", device, DB_DATA_DIR];
}

export const GROW_DATA_PATH = "/usr/local/sbin/webstack-grow-data";
export const GROW_DATA_TIMER = "webstack-grow-data.timer";

/**
 * The filesystem follows the volume: a oneshot at boot and every two minutes grows the mounted ext4
 * to its device's size when the device is larger (EBS grows a volume in place; the node sees the new
 * size within minutes). Its timer starts at the first apply without waiting; a node booted before
 * this part existed enables it when its bundle brings the timer.
 */
export function dataVolumeGrowPart(): BundlePart {
  return {
    files: [
      { path: GROW_DATA_PATH, content: shippedFile("grow-data.sh"), mode: "0755" },
      unitFile(
        "webstack-grow-data.service",
        renderShipped("webstack-grow-data.service", { DATA_DIR: DB_DATA_DIR }),
      ),
      unitFile(GROW_DATA_TIMER, shippedFile(GROW_DATA_TIMER), "enable", "--now", GROW_DATA_TIMER),
    ],
    firstApply: [["systemctl", "enable", "--now", "--no-block", GROW_DATA_TIMER]],
  };
}
