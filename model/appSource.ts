// A team's app directory (issue 18): what a release may hold, judged on what was found in it.

/** The largest packed release, in MiB: every app node downloads and unpacks each one. */
export const APP_ARCHIVE_LIMIT_MIB = 100;

/** Directories never packed, at any depth: byte code, VCS data, local virtualenvs. */
const SKIPPED_DIRECTORIES = new Set(["__pycache__", ".git", "venv", ".venv"]);

/**
 * Whether an entry stays out of a release: the node builds its own venv and byte code, and a
 * team's checkout must not ship its history.
 */
export function isSkipped(name: string, isDirectory: boolean): boolean {
  return isDirectory ? SKIPPED_DIRECTORIES.has(name) : name.endsWith(".pyc");
}

/** What the program found in the app directory (platform/appArchive.ts reads it). */
export interface AppSourceListing {
  /** The directory as the program resolved it (absolute), for messages. */
  readonly path: string;
  /** Whether that path is a directory at all; everything else is empty when it is not. */
  readonly isDirectory: boolean;
  /** Regular files to pack, as relative POSIX paths. */
  readonly files: readonly string[];
  /** Symlinks and special files (sockets, FIFOs, devices): a release cannot carry them. */
  readonly unsupported: readonly string[];
  /** The text of requirements.txt at the directory's top, when there is one. */
  readonly requirements?: string;
  /** The size of the packed release in bytes. */
  readonly archiveBytes: number;
}

/** `a.b:app` → the files Python would import `a.b` from, relative to the app directory. */
export function moduleFiles(appModule: string): [string, string] {
  const modulePath = appModule.split(":")[0].replace(/\./g, "/");
  return [`${modulePath}.py`, `${modulePath}/__init__.py`];
}

/** A distribution name as PEP 503 compares them: lowercase, runs of `-`, `_`, `.` as one `-`. */
export function normalizeDistributionName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, "-");
}

/** A PEP 508 name at the start of a requirement, followed by extras, a version, a marker or nothing. */
const REQUIREMENT_NAME = /^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:$|[[<>=!~;(@\s])/;

/** What requirements.txt asks for: distributions by name, and lines naming none (a URL, a path, `-e`). */
export interface RequirementsFinding {
  readonly names: readonly string[];
  /** Installing these needs an index or the network; the node installs from wheels/ only. */
  readonly unnamed: readonly string[];
}

/**
 * The distributions requirements.txt asks for. Comments and blank lines are skipped, continued
 * lines joined, and option lines (`--hash`, `-c`) left to pip but an editable install (`-e .`), which
 * names no distribution and could only build in the release's directory (read-only on the node).
 */
export function requirementNames(text: string): RequirementsFinding {
  const names: string[] = [];
  const unnamed: string[] = [];
  const logical = text.replace(/\\\r?\n/g, " ").split(/\r?\n/);
  for (const line of logical) {
    const requirement = line.replace(/(^|\s)#.*$/, "").trim();
    // An editable install builds in the release's directory, which is read-only on the node.
    if (/^(-e|--editable)(\s|=|$)/.test(requirement)) unnamed.push(requirement);
    if (requirement === "" || requirement.startsWith("-")) continue;
    const match = REQUIREMENT_NAME.exec(requirement);
    if (match) names.push(match[1]);
    else unnamed.push(requirement);
  }
  return { names, unnamed };
}

/** The distribution a wheel file holds: its name's first dash-separated field (PEP 427). */
export function wheelDistribution(fileName: string): string | undefined {
  const match = /^([^-]+)-[^-]+(?:-[^-]+)?-[^-]+-[^-]+-[^-]+\.whl$/.exec(fileName);
  return match ? normalizeDistributionName(match[1]) : undefined;
}

/** A problem with the app directory, and the key whose value it is about. */
export interface AppSourceProblem {
  readonly key: "appSource" | "appModule";
  readonly message: string;
}

/** Requirements no wheel in `wheels/` provides: the node installs offline, from those only. */
function missingWheels(listing: AppSourceListing): string[] {
  if (listing.requirements === undefined) return [];
  const { names, unnamed } = requirementNames(listing.requirements);
  const wheels = new Set(
    listing.files
      .filter((f) => /^wheels\/[^/]+\.whl$/.test(f))
      .map((f) => wheelDistribution(f.slice("wheels/".length)))
      .filter((name): name is string => name !== undefined),
  );
  const problems = unnamed.map(
    (line) =>
      `requirements.txt asks for ${JSON.stringify(line)}, which is not a distribution by name; ` +
      "expected names (with versions) that wheels/ provides",
  );
  const missing = names.filter((name) => !wheels.has(normalizeDistributionName(name)));
  if (missing.length > 0) {
    problems.push(
      `requirements.txt asks for ${missing.join(", ")}, which wheels/ holds no wheel of; ` +
        "build them with pip wheel -r requirements.txt -w wheels",
    );
  }
  return problems;
}

/**
 * Everything wrong with an app directory for a module, each naming the key whose value it is
 * about. `source` is the value as configured, shown as given.
 */
export function appSourceProblems(
  listing: AppSourceListing,
  source: string,
  appModule: string,
): AppSourceProblem[] {
  const shown = `${JSON.stringify(source)} (${listing.path})`;
  if (!listing.isDirectory) {
    return [{ key: "appSource", message: `${shown} is not a directory` }];
  }
  const problems: AppSourceProblem[] = [];
  const files = new Set(listing.files);
  const candidates = moduleFiles(appModule);
  if (!candidates.some((file) => files.has(file))) {
    problems.push({
      key: "appModule",
      message: `${JSON.stringify(appModule)} has no module file in ${shown}: expected ${candidates.join(" or ")}`,
    });
  }
  for (const message of missingWheels(listing))
    problems.push({ key: "appSource", message: `${shown}: ${message}` });
  if (listing.unsupported.length > 0) {
    problems.push({
      key: "appSource",
      message:
        `${shown} holds symlinks or special files (${listing.unsupported.join(", ")}), which a ` +
        "release cannot carry; expected regular files and directories only",
    });
  }
  const mib = listing.archiveBytes / (1024 * 1024);
  if (mib > APP_ARCHIVE_LIMIT_MIB) {
    problems.push({
      key: "appSource",
      message: `${shown} packs to ${mib.toFixed(1)} MiB, over the ${APP_ARCHIVE_LIMIT_MIB} MiB limit`,
    });
  }
  return problems;
}
