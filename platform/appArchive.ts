// The app directory read and packed (issue 18): a deterministic tar.gz whose sha256 names the
// release, so packing the same directory again gives the same release.
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as zlib from "zlib";
import { Header } from "tar";
import { AppSourceListing, isSkipped } from "../model/appSource";

/** One entry of a release archive, in packing order. */
export interface ArchiveEntry {
  /** Relative POSIX path; a directory's ends with "/". */
  readonly path: string;
  readonly type: "File" | "Directory";
  /** 0644, or 0755 for directories and files their owner may execute. */
  readonly mode: number;
}

/** What a walk of the app directory found: the entries to pack and what cannot be packed. */
interface Walk {
  readonly entries: ArchiveEntry[];
  readonly unsupported: string[];
}

/** Every entry under `root` but the skipped ones, sorted by path (a parent before its children). */
function walk(root: string): Walk {
  const entries: ArchiveEntry[] = [];
  const unsupported: string[] = [];
  const visit = (relative: string) => {
    for (const dirent of fs.readdirSync(path.join(root, relative), { withFileTypes: true })) {
      const at = relative ? `${relative}/${dirent.name}` : dirent.name;
      if (isSkipped(dirent.name, dirent.isDirectory())) continue;
      if (dirent.isDirectory()) {
        entries.push({ path: `${at}/`, type: "Directory", mode: 0o755 });
        visit(at);
      } else if (dirent.isFile()) {
        const executable = (fs.lstatSync(path.join(root, at)).mode & 0o100) !== 0;
        entries.push({ path: at, type: "File", mode: executable ? 0o755 : 0o644 });
      } else {
        unsupported.push(at);
      }
    }
  };
  visit("");
  // Plain code-unit order, the same on every machine (no locale).
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { entries, unsupported: unsupported.sort() };
}

const BLOCK = 512;

/**
 * One ustar entry: header (owner 0:0, mtime 0, no names) and content padded to a block. No pax
 * headers: a path ustar cannot hold is an error rather than an extension carrying times.
 */
function ustarEntry(entry: ArchiveEntry, content: Buffer): Buffer[] {
  const header = new Header({
    path: entry.path,
    mode: entry.mode,
    uid: 0,
    gid: 0,
    size: content.length,
    mtime: new Date(0),
    type: entry.type,
    uname: "",
    gname: "",
  });
  if (header.encode()) throw new Error(`${entry.path}: too long a path for a release archive`);
  const padding = Buffer.alloc((BLOCK - (content.length % BLOCK)) % BLOCK);
  return [header.block!, content, padding];
}

/**
 * The entries of `root` as tar.gz bytes. The gzip header's OS byte is set to "unknown", as
 * node-tar's portable mode does, so the bytes do not depend on the packing machine's OS.
 */
export function packArchive(root: string, entries: readonly ArchiveEntry[]): Buffer {
  const blocks = entries.flatMap((entry) =>
    ustarEntry(
      entry,
      entry.type === "File" ? fs.readFileSync(path.join(root, entry.path)) : Buffer.alloc(0),
    ),
  );
  // Two zero blocks end a tar archive.
  const gzipped = zlib.gzipSync(Buffer.concat([...blocks, Buffer.alloc(2 * BLOCK)]), { level: 9 });
  gzipped[9] = 0xff;
  return gzipped;
}

/** The release id: the sha256 of the archive's bytes, in hex. */
export function releaseIdOf(archive: Buffer): string {
  return crypto.createHash("sha256").update(archive).digest("hex");
}

/** The app directory read and, when it is one, packed: what the config parser judges, and the bytes. */
export interface AppSource {
  readonly listing: AppSourceListing;
  readonly entries: readonly ArchiveEntry[];
  /** Absent when the path is not a directory. */
  readonly archive?: Buffer;
}

/** Reads and packs the app directory at `dir` (absolute). */
export function readAppSource(dir: string): AppSource {
  const isDirectory = fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory() ?? false;
  if (!isDirectory) {
    return {
      listing: { path: dir, isDirectory, files: [], unsupported: [], archiveBytes: 0 },
      entries: [],
    };
  }
  const { entries, unsupported } = walk(dir);
  const archive = packArchive(dir, entries);
  const requirements = path.join(dir, "requirements.txt");
  return {
    listing: {
      path: dir,
      isDirectory,
      files: entries.filter((e) => e.type === "File").map((e) => e.path),
      unsupported,
      ...(fs.existsSync(requirements)
        ? { requirements: fs.readFileSync(requirements, "utf8") }
        : {}),
      archiveBytes: archive.length,
    },
    entries,
    archive,
  };
}

/** A packed release written where Pulumi uploads it from. */
export interface ReleaseArchive {
  /** The sha256 of the archive, in hex. */
  readonly id: string;
  /** `releaseArchivePath(id)`. */
  readonly path: string;
}

/**
 * This user's directory of packed releases, `<os.tmpdir()>/webstack-releases-<uid>`: one per user,
 * as a shared one belongs to whoever made it first (root, after a CI run) and refuses the others.
 */
export function releaseArchiveDir(): string {
  return path.join(
    os.tmpdir(),
    `webstack-releases-${process.getuid?.() ?? os.userInfo().username}`,
  );
}

/** Where a packed release is written: `<releaseArchiveDir()>/<id>.tar.gz`. */
export function releaseArchivePath(id: string): string {
  return path.join(releaseArchiveDir(), `${id}.tar.gz`);
}

/**
 * Writes the archive under this user's directory of releases, named by its id. Written to a
 * temporary name and renamed: runs packing the same release at once never read a partial file.
 */
export function writeReleaseArchive(archive: Buffer): ReleaseArchive {
  const id = releaseIdOf(archive);
  const file = releaseArchivePath(id);
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Anyone may make a directory of that name first in a shared temporary directory, and whoever
  // can write in it can swap the release before its upload: the app nodes would run theirs.
  const made = fs.lstatSync(dir);
  const uid = process.getuid?.();
  if (!made.isDirectory() || (uid !== undefined && made.uid !== uid) || made.mode & 0o022)
    throw new Error(
      `${dir}: not a directory this user owns and alone can write to (the release is packed ` +
        "there before its upload); remove it",
    );
  const partial = `${file}.${process.pid}.partial`;
  fs.writeFileSync(partial, archive);
  fs.renameSync(partial, file);
  return { id, path: file };
}
