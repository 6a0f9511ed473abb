// Debian's archive over HTTPS: every node fetches its packages on 443, so no security group needs
// port 80 outbound. apt checks every file against Debian's signed indexes whatever the transport;
// TLS adds that an on-path observer no longer sees, or holds back, which packages a node fetches.

/** Debian 13, the nodes' release (the AMI's and the lab's rootfs). */
export const DEBIAN_RELEASE = "trixie";

/** Debian's archive (Fastly's CDN behind deb.debian.org serves HTTPS). */
export const DEBIAN_ARCHIVE = "https://deb.debian.org/debian";

/** Debian's security archive, over HTTPS too. */
export const DEBIAN_SECURITY = "https://security.debian.org/debian-security";

/** The hosts the nodes fetch packages from (the lab's mirror answers at each). */
export const DEBIAN_ARCHIVE_HOSTS = [DEBIAN_ARCHIVE, DEBIAN_SECURITY].map(
  (uri) => new URL(uri).hostname,
);

/** The suites each archive serves a node: the release with its updates, and security updates. */
export const DEBIAN_SUITES = {
  archive: [DEBIAN_RELEASE, `${DEBIAN_RELEASE}-updates`],
  security: [`${DEBIAN_RELEASE}-security`],
} as const;

const KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg";

/**
 * cloud-init's `sources_list` template, deb822 ($PRIMARY, $SECURITY and $RELEASE are cloud-init's
 * own substitutions): cloud-init writes it to /etc/apt/sources.list.d/debian.sources, the file a
 * Debian 13 AMI ships, before any package installs.
 */
export const DEBIAN_SOURCES_TEMPLATE = [
  `Types: deb\nURIs: $PRIMARY\nSuites: ${DEBIAN_SUITES.archive.map((s) => s.replace(DEBIAN_RELEASE, "$RELEASE")).join(" ")}\nComponents: main\nSigned-By: ${KEYRING}\n`,
  `Types: deb\nURIs: $SECURITY\nSuites: ${DEBIAN_SUITES.security.map((s) => s.replace(DEBIAN_RELEASE, "$RELEASE")).join(" ")}\nComponents: main\nSigned-By: ${KEYRING}\n`,
].join("\n");

/** The sources as a node ends up with them: the template with cloud-init's substitutions made. */
export function debianSources(): string {
  return DEBIAN_SOURCES_TEMPLATE.replaceAll("$PRIMARY", DEBIAN_ARCHIVE)
    .replaceAll("$SECURITY", DEBIAN_SECURITY)
    .replaceAll("$RELEASE", DEBIAN_RELEASE);
}

/** The user-data's `apt` settings: Debian's own sources, over HTTPS, whatever the image shipped. */
export function debianAptConfig(): Record<string, unknown> {
  return {
    // Debian's cloud.cfg preserves the image's sources; ours replace them.
    preserve_sources_list: false,
    primary: [{ arches: ["default"], uri: DEBIAN_ARCHIVE }],
    security: [{ arches: ["default"], uri: DEBIAN_SECURITY }],
    sources_list: DEBIAN_SOURCES_TEMPLATE,
  };
}
