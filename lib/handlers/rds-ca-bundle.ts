/** The file name of the Amazon RDS CA bundle, in the repository and beside the bootstrap's bundle. */
export const RDS_CA_BUNDLE_FILE = 'rds-ca-bundle.pem';
