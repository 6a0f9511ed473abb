// Composition root: config → topology → network → firewalls → VPC endpoints → key → RDS (with
// `database: rds`) → bucket → identities → log groups and session preferences → PKI and secrets →
// the app's release → images → certificate → bundles (what runs on each node) → app nodes → their
// snapshots → load balancer → monitoring → outputs.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { loadConfig } from "./platform/pulumiConfig";
import {
  AppNodeName,
  NodeName,
  LB_NODE,
  PORTS,
  PRIMARY_NODE,
  REPLICA_NODE,
  SUBNET_NAMES,
  appNodeBuildOrder,
  appNodesHoldData,
  buildTopology,
  hasArbitrator,
  mapNodes,
} from "./model/topology";
import { makeTagger } from "./model/tags";
import { BACKUP_PREFIX } from "./model/backups";
import { RequestLimits, requestTimeouts } from "./model/limits";
import { bundleStatusName, logGroupName, parameterPath } from "./model/naming";
import { NodeMonitoring } from "./cloud-init/monitoring";
import { ssmAgentPackageUrl } from "./cloud-init/ssmAgent";
import { dbNodeRole, galeraClusterName, galeraMember } from "./cloud-init/database";
import { currentAccount } from "./platform/account";
import { interfaceEndpointServices } from "./model/aws";
import { Network } from "./components/network";
import { Firewalls } from "./components/firewalls";
import { VpcEndpoints } from "./components/vpcEndpoints";
import { ParameterKey } from "./components/parameterKey";
import { StackBucket } from "./components/stackBucket";
import { NodeBundles } from "./components/nodeBundles";
import { NodeIdentity } from "./components/nodeIdentity";
import { Pki } from "./components/pki";
import { ArbitratorTls } from "./components/arbitratorTls";
import { RdsDatabase } from "./components/rdsDatabase";
import { RDS_ENGINE_VERSION } from "./model/rds";
import { AppSecrets } from "./components/appSecrets";
import { AppRelease } from "./components/appRelease";
import { AppSecretVariables } from "./components/appSecretVariables";
import { NodeImage } from "./components/nodeImage";
import { AppNode } from "./components/appNode";
import { PublicCertificate } from "./components/publicCertificate";
import { LoadBalancer } from "./components/loadBalancer";
import { NodeLogGroups } from "./components/logGroups";
import { Monitoring } from "./components/monitoring";
import { DatadogApiKey } from "./components/datadogApiKey";
import { SessionManager } from "./components/sessionManager";
import { Backups } from "./components/backups";

export = async () => {
  // Every config problem, EC2's verdict on the instance types included, is reported here, before
  // any resource exists.
  const { config, architectures, lbMemoryMiB, appWorkers, release } = await loadConfig();
  const stack = pulumi.getStack();
  const topology = buildTopology(config.vpcCidr, {
    vpcEndpoints: config.vpcEndpoints,
    database: config.database,
    appNodeCount: config.appNodeCount,
  });
  // The app nodes as the program builds them: the primary first, then s1, s3, …
  const appNodeOrder = appNodeBuildOrder(topology.appNodes.length);
  const tags = makeTagger(stack, config.tags);
  const account = currentAccount();

  const network = new Network("network", {
    topology,
    account,
    flowLogGroupName: logGroupName(stack, "vpc-flow-logs"),
    logRetentionDays: config.logRetentionDays,
    tags,
  });
  const firewalls = new Firewalls("firewalls", {
    vpcId: network.vpcId,
    nodes: topology.nodes,
    flows: topology.flows,
    tags,
  });
  const privateSubnetIds = SUBNET_NAMES.filter((s) => !topology.subnets[s].public).map(
    (s) => network.subnetIds[s],
  );
  // The nodes' AWS traffic inside the VPC (off by default: interface endpoints cost by the hour).
  if (config.vpcEndpoints) {
    new VpcEndpoints("endpoints", {
      vpcId: network.vpcId,
      region: account.region,
      routeTableIds: [network.routeTableIds.public, network.routeTableIds.private],
      subnetIds: privateSubnetIds,
      securityGroupId: firewalls.endpointsGroupId!,
      // With rds, Secrets Manager's too: s2 reads the instance's master secret without NAT.
      services: interfaceEndpointServices(config.database),
      tags,
    });
  }
  // With rds the key outlives the stack: the instance's final snapshot and backups need it.
  const parameterKey = new ParameterKey("parameters", {
    stack,
    ...(config.database === "rds" ? { outlivesStack: { protect: config.protectData } } : {}),
    tags,
  });
  // `database: rds`: the stack's database is Amazon's, in the private subnets, behind its own group.
  const rds =
    config.database === "rds"
      ? new RdsDatabase("database", {
          stack,
          subnetIds: privateSubnetIds,
          securityGroupId: firewalls.rdsGroupId!,
          keyArn: parameterKey.keyArn,
          instanceClass: config.rdsInstanceClass,
          allocatedStorageGiB: config.dataVolumeGiB,
          backupRetentionDays: config.backupRetentionDays,
          protectData: config.protectData,
          logRetentionDays: config.logRetentionDays,
          tags,
        })
      : undefined;
  const bucket = new StackBucket("files", {
    stack,
    keyArn: parameterKey.keyArn,
    protectData: config.protectData,
    backupRetentionDays: config.backupRetentionDays,
    tags,
  });
  const identities = mapNodes(
    topology.nodeNames,
    (node) =>
      new NodeIdentity(`${node}-identity`, {
        node: topology.nodes[node],
        stack,
        account,
        parameterKeyArn: parameterKey.keyArn,
        bucketArn: bucket.bucketArn,
        database: config.database,
        // The node that writes the schema and users on RDS reads its master user's secret.
        ...(rds && node === PRIMARY_NODE ? { databaseAdminSecretArn: rds.adminSecretArn } : {}),
        tags,
      }),
  );

  const logGroups = new NodeLogGroups("logs", {
    stack,
    nodes: topology.nodes,
    retentionDays: config.logRetentionDays,
    database: config.database,
    tags,
  });
  // A shell on a node: the stack's own Session Manager document, logging to the stack.
  const sessions = new SessionManager("sessions", {
    stack,
    account,
    retentionDays: config.logRetentionDays,
    tags,
  });
  const datadog =
    config.datadogApiKey && config.datadog
      ? new DatadogApiKey("datadog", {
          stack,
          apiKey: config.datadogApiKey,
          parameterKeyId: parameterKey.keyId,
          tags,
        })
      : undefined;
  const monitoringOf = (node: NodeName): NodeMonitoring => ({
    logGroups: logGroups.names[node],
    cloudWatchAgentUrl: config.cloudWatchAgentUrl,
    engine: config.dbEngine,
    cluster: config.database,
    datadog: datadog && {
      stack,
      site: config.datadogSite,
      repoUrl: config.datadogRepoUrl,
      apiKeyParameter: datadog.parameterName,
      // App nodes only, and only with a database of their own: AppSecrets makes none for the LB
      // nor with rds (RDS is watched by CloudWatch).
      monitorPasswordParameter: appSecrets.parameterNames[node]?.["db-monitor-password"],
    },
  });
  const appNodeSpecs = appNodeOrder.map((node) => topology.nodes[node]);
  // With galera and an even number of app nodes the LB's arbitrator is in the group too: it gets a
  // certificate from the same CA.
  const arbitrator = hasArbitrator(config.database, topology.appNodes.length);
  const pki = new Pki("pki", {
    nodes: arbitrator ? [...appNodeSpecs, topology.nodes.lb] : appNodeSpecs,
    organization: `webstack ${stack}`,
  });
  const arbitratorTls = arbitrator
    ? new ArbitratorTls("arbitrator-tls", {
        stack,
        node: topology.nodes.lb,
        certificate: pki.certificates.lb!,
        parameterKeyId: parameterKey.keyId,
        tags,
      })
    : undefined;
  const appSecrets = new AppSecrets("app-secrets", {
    stack,
    nodes: appNodeSpecs,
    certificates: pki.certificates,
    // With rds no replication or monitoring password: RDS replicates and CloudWatch watches.
    holdsData: appNodesHoldData(config.database),
    parameterKeyId: parameterKey.keyId,
    tags,
  });
  // The team's app: the packed directory in the bucket, its secret variables in SSM.
  const appRelease = new AppRelease("app-release", {
    archive: release,
    bucketName: bucket.bucketName,
    keyArn: parameterKey.keyArn,
  });
  const appVariables = new AppSecretVariables("app-variables", {
    stack,
    secrets: config.appSecrets,
    parameterKeyId: parameterKey.keyId,
    tags,
  });
  // Each kind of node keeps the image its stack recorded; only lbAmi/appAmi move it.
  const images = {
    lb: new NodeImage("lb-image", {
      stack,
      kind: "lb",
      nodes: [LB_NODE],
      architecture: architectures.lb,
      configured: config.lbAmi,
      tags,
    }),
    app: new NodeImage("app-image", {
      stack,
      kind: "app",
      nodes: topology.appNodes,
      architecture: architectures.app,
      configured: config.appAmi,
      tags,
    }),
  };
  const primary = topology.nodes[PRIMARY_NODE];
  const replica = topology.nodes[REPLICA_NODE];
  const limits: RequestLimits = {
    timeouts: requestTimeouts(config.lbServerTimeoutSeconds),
    maxBodyMiB: config.maxBodyMiB,
  };
  const zoneId = config.hostedZone
    ? aws.route53.getZoneOutput({ name: config.hostedZone, privateZone: false }).zoneId
    : undefined;
  const certificate = new PublicCertificate("certificate", {
    node: topology.nodes.lb,
    mode: config.certificate,
    domain: config.domain,
    stack,
    zoneId,
    acmeEmail: config.acmeEmail,
    acmeDirectory: config.acmeDirectory,
    parameterKeyId: parameterKey.keyId,
    parameterKeyArn: parameterKey.keyArn,
    account,
    tags,
  });

  // What runs on each node; every node-level setting lands here, and reaches running nodes in place.
  const bundles = new NodeBundles("bundles", {
    stack,
    bucketName: bucket.bucketName,
    keyArn: parameterKey.keyArn,
    caCertPem: pki.caCertPem,
    appNodes: appNodeOrder.map((node) => ({
      stack,
      node: topology.nodes[node],
      primaryIp: primary.privateIp,
      primaryServerId: primary.dbServerId,
      replicaIp: replica.privateIp,
      appNodeIps: appNodeSpecs.map((n) => n.privateIp),
      engine: config.dbEngine,
      cluster: config.database,
      ...(config.database === "galera" ? { galera: galeraMember(stack, topology, node) } : {}),
      limits,
      workers: appWorkers,
      parameters: appSecrets.parameterNames[node]!,
      architecture: architectures.app,
      monitoring: monitoringOf(node),
    })),
    release: {
      id: appRelease.id,
      bucket: bucket.bucketName,
      key: appRelease.key,
      module: config.appModule,
      env: config.appEnv,
      secrets: appVariables.refs,
      command: config.releaseCommand,
    },
    loadBalancer: {
      stack,
      node: topology.nodes.lb,
      domain: config.domain,
      // Every app node, by name: s1, s2, …
      backends: topology.appNodes
        .map((node) => topology.nodes[node])
        .map((n) => ({
          name: n.name,
          address: n.privateIp,
          fqdn: n.internalName,
        })),
      serverTimeoutSeconds: limits.timeouts.lbServerSeconds,
      rateLimitPerClient: config.rateLimitPerClient,
      memoryMiB: lbMemoryMiB,
      appWorkers,
      architecture: architectures.lb,
      monitoring: monitoringOf(LB_NODE),
      database: config.database,
      ...(arbitratorTls
        ? {
            arbitrator: {
              clusterName: galeraClusterName(stack),
              memberIps: appNodeSpecs.map((n) => n.privateIp),
              parameters: arbitratorTls.parameters,
            },
          }
        : {}),
    },
    ...(rds ? { rds: rds.endpoint } : {}),
    certificate: certificate.setup,
    ssmAgentUrl: account.apply(ssmAgentPackageUrl),
    tags,
  });

  const appNodes = Object.fromEntries(
    appNodeOrder.map((node) => {
      const spec = topology.nodes[node];
      return [
        node,
        new AppNode(node, {
          stack,
          node: spec,
          engine: config.dbEngine,
          cluster: config.database,
          instanceType: config.appInstanceType,
          ami: images.app.amiId,
          subnetId: network.subnetIds[spec.subnet],
          availabilityZone: network.availabilityZones[spec.subnet],
          securityGroupId: firewalls.groupIds[node],
          instanceProfileName: identities[node].instanceProfileName,
          bundlePointer: bundles.pointers[node],
          protectData: config.protectData,
          dataVolumeGiB: config.dataVolumeGiB,
          tags,
        }),
      ];
    }),
  ) as Record<AppNodeName, AppNode>;
  // The data volumes' daily snapshots (the physical backups and binlogs go to the bucket); with
  // rds, RDS's automated backups instead.
  const backups = rds
    ? undefined
    : new Backups("backups", {
        stack,
        account,
        retentionDays: config.backupRetentionDays,
        tags,
      });

  const lb = new LoadBalancer("lb", {
    stack,
    node: topology.nodes.lb,
    domain: config.domain,
    instanceType: config.lbInstanceType,
    ami: images.lb.amiId,
    subnetId: network.subnetIds.public,
    securityGroupId: firewalls.groupIds.lb,
    instanceProfileName: identities.lb.instanceProfileName,
    roleName: identities.lb.roleName,
    certificate,
    bundlePointer: bundles.pointers.lb,
    zoneId,
    tags,
  });

  const monitoring = new Monitoring("monitoring", {
    stack,
    account,
    instanceIds: mapNodes(topology.nodeNames, (node) =>
      node === LB_NODE ? lb.instanceId : appNodes[node].instanceId,
    ),
    qpsThreshold: config.qpsAlarmThreshold,
    replicaLagSeconds: config.replicaLagAlarmSeconds,
    cluster: config.database,
    ...(rds ? { rds: { identifier: rds.identifier, storageGiB: config.dataVolumeGiB } } : {}),
    alarmEmail: config.alarmEmail,
    tags,
  });

  return {
    region: account.region,
    vpcId: network.vpcId,
    vpcCidr: topology.vpcCidr,
    subnetIds: {
      public: network.subnetIds.public,
      privateA: network.subnetIds["private-a"],
      privateB: network.subnetIds["private-b"],
    },
    natPublicIp: network.natPublicIp,
    flowLogGroupName: network.flowLogGroupName,
    securityGroupIds: firewalls.groupIds,
    privateIps: mapNodes(topology.nodeNames, (node) => topology.nodes[node].privateIp),
    internalNames: mapNodes(topology.nodeNames, (node) => topology.nodes[node].internalName),
    instanceRoleArns: mapNodes(topology.nodeNames, (node) => identities[node].roleArn),
    instanceProfiles: mapNodes(topology.nodeNames, (node) => identities[node].instanceProfileName),
    parameterPaths: {
      ...mapNodes(topology.nodeNames, (node) => parameterPath(stack, node)),
      shared: parameterPath(stack, "shared"),
    },
    parameterKeyArn: parameterKey.keyArn,
    bundleBucket: bucket.bucketName,
    bundleRelease: bundles.release,
    appRelease: appRelease.id,
    bundles: mapNodes(topology.nodeNames, (node) => ({
      pointer: bundles.refs[node].pointer,
      status: bundleStatusName(stack, node),
      key: bundles.refs[node].key,
      sha256: bundles.refs[node].sha256,
    })),
    appNodes: Object.fromEntries(
      appNodeOrder.map((node) => {
        const n = appNodes[node];
        return [
          node,
          {
            instanceId: n.instanceId,
            privateIp: n.privateIp,
            internalName: n.internalName,
            role: dbNodeRole({ cluster: config.database, role: n.role }),
          },
        ];
      }),
    ),
    // With rds the app writes and reads the one instance.
    dbEndpoints: rds
      ? {
          primary: pulumi.interpolate`${rds.address}:${rds.port}`,
          replica: pulumi.interpolate`${rds.address}:${rds.port}`,
        }
      : {
          primary: `${primary.privateIp}:${PORTS.mysql}`,
          replica: `${replica.privateIp}:${PORTS.mysql}`,
        },
    database: rds
      ? {
          mode: config.database,
          instance: rds.identifier,
          address: rds.address,
          port: rds.port,
          securityGroupId: firewalls.rdsGroupId!,
          engineVersion: RDS_ENGINE_VERSION,
          instanceClass: config.rdsInstanceClass,
        }
      : { mode: config.database },
    internalCaCertPem: pki.caCertPem,
    url: lb.url,
    dnsName: lb.dnsName,
    dnsRecordManaged: zoneId !== undefined,
    certificateMode: config.certificate,
    logGroups: logGroups.names,
    sessions: { document: sessions.documentName, logGroup: sessions.logGroupName },
    backups: backups
      ? {
          bucket: bucket.bucketName,
          prefix: BACKUP_PREFIX,
          dlmPolicyId: backups.snapshotPolicyId,
          retentionDays: config.backupRetentionDays,
        }
      : { rdsInstance: rds!.identifier, retentionDays: config.backupRetentionDays },
    dashboardUrl: monitoring.dashboardUrl,
    alarmTopicArn: monitoring.alarmTopicArn,
    images: { lb: images.lb.report, app: images.app.report },
    loadBalancer: {
      instanceId: lb.instanceId,
      publicIp: lb.publicIp,
      privateIp: topology.nodes.lb.privateIp,
      internalName: topology.nodes.lb.internalName,
    },
  };
};
