// The private PKI: an internal CA and one ECDSA certificate per node it is given (the app nodes; with
// `database: galera` and an even number of them, the LB's arbitrator too), for the node's fixed
// name and IP.
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { NodeName, NodeSpec } from "../model/topology";

/** Validity of the internal CA: ten years; rotating it means re-issuing every leaf. */
export const CA_VALIDITY_HOURS = 10 * 365 * 24;
/** Leaf certificates live a year and are re-issued by any `pulumi up` in their last 30 days. */
export const LEAF_VALIDITY_HOURS = 365 * 24;
export const LEAF_EARLY_RENEWAL_HOURS = 30 * 24;

export interface PkiArgs {
  /** The nodes that get a certificate: the app nodes, and the LB when it runs the arbitrator. */
  readonly nodes: readonly NodeSpec[];
  /** Subject organization of every certificate. */
  readonly organization: string;
}

export interface NodeCertificate {
  /** PEM of the leaf certificate (public). */
  readonly certPem: pulumi.Output<string>;
  /** PEM of the leaf's private key (secret). */
  readonly keyPem: pulumi.Output<string>;
}

export class Pki extends pulumi.ComponentResource {
  /** PEM of the CA certificate: public; HAProxy and the database clients trust it. */
  readonly caCertPem: pulumi.Output<string>;
  readonly certificates: Readonly<Partial<Record<NodeName, NodeCertificate>>>;

  constructor(name: string, args: PkiArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:pki:Pki", name, {}, opts);
    const child = { parent: this };
    const ecdsa = { algorithm: "ECDSA", ecdsaCurve: "P256" };

    const caKey = new tls.PrivateKey(`${name}-ca-key`, ecdsa, child);
    const ca = new tls.SelfSignedCert(
      `${name}-ca`,
      {
        privateKeyPem: caKey.privateKeyPem,
        isCaCertificate: true,
        // The CA signs leaves only: no intermediate may be made from it.
        maxPathLength: 0,
        validityPeriodHours: CA_VALIDITY_HOURS,
        allowedUses: ["cert_signing", "crl_signing", "digital_signature"],
        subject: {
          commonName: `${args.organization} internal CA`,
          organization: args.organization,
        },
      },
      child,
    );

    const certificates: Partial<Record<NodeName, NodeCertificate>> = {};
    for (const node of args.nodes) {
      const key = new tls.PrivateKey(`${name}-${node.name}-key`, ecdsa, child);
      const request = new tls.CertRequest(
        `${name}-${node.name}-csr`,
        {
          privateKeyPem: key.privateKeyPem,
          subject: { commonName: node.internalName, organization: args.organization },
          dnsNames: [node.internalName],
          ipAddresses: [node.privateIp],
        },
        child,
      );
      const cert = new tls.LocallySignedCert(
        `${name}-${node.name}-cert`,
        {
          certRequestPem: request.certRequestPem,
          caPrivateKeyPem: caKey.privateKeyPem,
          caCertPem: ca.certPem,
          validityPeriodHours: LEAF_VALIDITY_HOURS,
          earlyRenewalHours: LEAF_EARLY_RENEWAL_HOURS,
          // client_auth too: the same certificate identifies the node to its database peer.
          allowedUses: ["digital_signature", "key_encipherment", "server_auth", "client_auth"],
        },
        child,
      );
      certificates[node.name] = { certPem: cert.certPem, keyPem: pulumi.secret(key.privateKeyPem) };
    }

    this.caCertPem = ca.certPem;
    this.certificates = certificates;
    this.registerOutputs({ caCertPem: this.caCertPem });
  }
}
